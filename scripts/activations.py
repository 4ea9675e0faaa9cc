# Thin: run on the device the job declares (decided before torch is imported), then the library
# makes the one pass (resumable).
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.gpu_slots import prepare_job_device  # noqa: E402  (imports no torch)

GPUS = prepare_job_device(snakemake)

from resstream.activations import extract_activations  # noqa: E402
from resstream.smk import script_main  # noqa: E402

script_main(snakemake, lambda cfg: extract_activations(cfg, snakemake.output.h5, gpus=GPUS))
