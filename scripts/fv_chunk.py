# Thin: run on the device the job declares (decided before torch is imported), then let the library
# render the chunk.
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.gpu_slots import prepare_job_device  # noqa: E402  (imports no torch)

GPUS = prepare_job_device(snakemake)

from resstream.fv_job import run_fv_chunk  # noqa: E402
from resstream.smk import script_main  # noqa: E402

script_main(
    snakemake,
    lambda cfg: run_fv_chunk(cfg, snakemake.wildcards.layer, snakemake.wildcards.chunk, snakemake.output[0], gpus=GPUS),
)
