# Thin: the units Fig 1 / Fig 6 show (from the metric tables), then their channel-objective FVs.
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.figures import figure_units  # noqa: E402
from resstream.fv_job import run_channel_fvs  # noqa: E402
from resstream.smk import script_main  # noqa: E402


def work(cfg):
    units = figure_units(snakemake.wildcards.fig, dict(zip(snakemake.params.blocks, snakemake.input.fv)), snakemake.params.figure_channels)
    return run_channel_fvs(cfg, units, snakemake.output[0])


script_main(snakemake, work)
