# Thin: the atlas index (one card per block) and the shared stylesheet and script.
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.atlas import write_index  # noqa: E402
from resstream.smk import script_main  # noqa: E402


def work(cfg):
    return write_index(
        snakemake.params.blocks,
        snakemake.input.fv,
        snakemake.input.imagenet,
        snakemake.output.html,
        snakemake.output.css,
        snakemake.output.js,
    )


script_main(snakemake, work)
