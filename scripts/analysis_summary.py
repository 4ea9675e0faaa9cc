# Thin: the per-block tables in, summary.json out (resstream/analysis.py).
import sys
sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.analysis import build_summary
from resstream.smk import script_main


def work(cfg):
    return build_summary(
        dict(zip(snakemake.params.blocks, snakemake.input.fv)),
        dict(zip(snakemake.params.blocks, snakemake.input.imagenet)),
        snakemake.output.json,
        fig34_blocks=snakemake.params.fig34_blocks,
    )


script_main(snakemake, work)
