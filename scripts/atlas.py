# Thin: the atlas jobs. atlas_block: one block's folder (table page, unit pages, thumbnails) from
# its tables and pictures; atlas_index: the index (one card per block), stylesheet and script.
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.atlas import write_block, write_index  # noqa: E402
from resstream.smk import script_main  # noqa: E402


def work(cfg):
    if snakemake.rule == "atlas_index":
        out = snakemake.output
        return write_index(snakemake.params.blocks, snakemake.input.fv, snakemake.input.imagenet, out.html, out.css, out.js,
                           scorecard_csv=snakemake.input.scorecard)
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
