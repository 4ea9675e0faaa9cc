# Thin: the atlas jobs. atlas_block: one block's folder (table page, unit pages, thumbnails) from
# its tables and pictures; atlas_index: the index (one card per block, its counts from
# summary.json), stylesheet and script.
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.atlas.write import write_block, write_index  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

given, out, params = snakemake.input, snakemake.output, snakemake.params


def index():
    return write_index(params.blocks, given.fv, given.summary, out.html, out.css, out.js, scorecard_csv=given.scorecard)


def block():
    return write_block(snakemake.wildcards.block, given.fv, given.imagenet, params.layers, given.fv_images,
                       given.channel_fvs, given.exemplars, out[0], params.settings,
                       dictionary_pictures=given.get("dictionary_pictures"))


script_main(snakemake, index if snakemake.rule == "atlas_index" else block)
