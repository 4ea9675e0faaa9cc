# Thin: the per-block metric tables in, the reproduction scorecard out (resstream/scorecard.py).
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.scorecard import write_scorecard  # noqa: E402
from resstream.smk import script_main  # noqa: E402


def work(cfg):
    blocks = snakemake.params.blocks
    return write_scorecard(
        dict(zip(blocks, snakemake.input.fv)),
        dict(zip(blocks, snakemake.input.imagenet)),
        {"csv": snakemake.output.csv, "md": snakemake.output.md, "html": snakemake.output.html},
        snakemake.input.claims,
    )


script_main(snakemake, work)
