# Thin: per-block tables (and the FV / exemplar pictures) in, one figure as PNG + PDF out
# (resstream/figures.py).  Which figure is params.figure.
import sys
sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.figures import make_figure
from resstream.smk import script_main


def work(cfg):
    imagenet = snakemake.input.imagenet if "imagenet" in snakemake.input.keys() else []
    return make_figure(
        snakemake.params.figure,
        dict(zip(snakemake.params.blocks, snakemake.input.fv)),
        dict(zip(snakemake.params.blocks, imagenet)),
        cfg["results"],
        snakemake.params.figure_channels,
        snakemake.output.png,
        snakemake.output.pdf,
        snakemake.input.channel_fvs if "channel_fvs" in snakemake.input.keys() else None,
    )


script_main(snakemake, work)
