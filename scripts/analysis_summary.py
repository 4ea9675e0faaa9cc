# Thin: the per-block tables in, summary.json out (resstream/analysis/summary.py).
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.analysis.summary import build_summary  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

blocks = snakemake.params.blocks
script_main(
    snakemake,
    lambda: build_summary(
        dict(zip(blocks, snakemake.input.fv)),
        dict(zip(blocks, snakemake.input.imagenet)),
        snakemake.output.json,
        fig34_blocks=snakemake.params.fig34_blocks,
    ),
)
