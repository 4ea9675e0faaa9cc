# Thin: one block's atlas folder (table page, unit pages, thumbnails) from its tables and pictures.
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.atlas import write_block  # noqa: E402
from resstream.smk import script_main  # noqa: E402


def work(cfg):
    return write_block(
        snakemake.wildcards.block,
        snakemake.input.fv,
        snakemake.input.imagenet,
        snakemake.params.layers,
        snakemake.input.fv_images,
        snakemake.input.channel_fvs,
        snakemake.input.exemplars,
        snakemake.output[0],
        snakemake.params.settings,
    )


script_main(snakemake, work)
