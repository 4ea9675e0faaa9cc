# Thin: every block's dictionary folder and channel FV table in, the feature-M figure and the summary out
# (resstream/dictionary/figure.py).
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.dictionary.figure import dictionary_summary, feature_m_figure  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

blocks = snakemake.params.blocks
folders, tables = dict(zip(blocks, snakemake.input.folders)), dict(zip(blocks, snakemake.input.tables))
script_main(
    snakemake,
    lambda: (
        feature_m_figure({b: f"{d}/features.json" for b, d in folders.items()}, tables, snakemake.output.png),
        dictionary_summary(folders, tables, snakemake.output.summary),
    ),
)
