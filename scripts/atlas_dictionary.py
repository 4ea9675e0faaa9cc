# Thin: one block's dictionary-feature pages of the atlas (resstream/atlas/dictionary_pages.py) from
# the dictionary stage's files the rule declares.
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.atlas.dictionary_pages import write_feature_pages  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

given = snakemake.input
script_main(
    snakemake,
    lambda: write_feature_pages(snakemake.wildcards.block, given.dictionary, given.pictures, snakemake.output[0],
                                snakemake.params.settings, snakemake.params.studied),
)
