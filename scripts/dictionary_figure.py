# Thin: every block's features.json and channel FV table in, the feature-M figure out
# (resstream/dictionary/figure.py).
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.dictionary.figure import feature_m_figure  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

blocks = snakemake.params.blocks
script_main(
    snakemake,
    lambda: feature_m_figure(
        {b: f"{d}/features.json" for b, d in zip(blocks, snakemake.input.folders)},
        dict(zip(blocks, snakemake.input.tables)),
        snakemake.output.png,
    ),
)
