# Thin: run on the device the job declares (decided before torch is imported), then the units
# Fig 1 / Fig 6 show (from the metric tables) and their channel-objective FVs.
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.gpu_slots import prepare_job_device  # noqa: E402  (imports no torch)

GPUS = prepare_job_device(snakemake)

from resstream.figures import figure_units  # noqa: E402
from resstream.fv_job import run_channel_fvs  # noqa: E402
from resstream.smk import script_main  # noqa: E402


def work(cfg):
    units = figure_units(snakemake.wildcards.fig, dict(zip(snakemake.params.blocks, snakemake.input.fv)), snakemake.params.figure_channels)
    return run_channel_fvs(cfg, units, snakemake.output[0], gpus=GPUS)


script_main(snakemake, work)
