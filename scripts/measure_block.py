# Thin: run on the device the job declares (decided before torch is imported), then the library
# measures the block (resstream/measure.py).
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.gpu_slots import prepare_job_device  # noqa: E402  (imports no torch)

GPUS = prepare_job_device(snakemake)

from resstream.measure import run_block_measurement  # noqa: E402
from resstream.smk import script_main  # noqa: E402


def work(cfg):
    return run_block_measurement(
        cfg, snakemake.wildcards.block, snakemake.params.stimulus, snakemake.input.activations, snakemake.output.csv,
        gpus=GPUS,
    )


script_main(snakemake, work)
