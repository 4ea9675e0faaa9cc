# Thin: the per-block metric tables in, the reproduction scorecard out (resstream/analysis/scorecard.py).
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.workflow.job_runner import script_main  # noqa: E402
from resstream.analysis.scorecard import write_scorecard  # noqa: E402

blocks, out = snakemake.params.blocks, snakemake.output
script_main(
    snakemake,
    lambda: write_scorecard(
        dict(zip(blocks, snakemake.input.fv)),
        dict(zip(blocks, snakemake.input.imagenet)),
        {"csv": out.csv, "md": out.md, "html": out.html},
        snakemake.input.claims,
        block_channels=snakemake.params.block_channels,
        readings=snakemake.params.readings,
        lesions_csv=snakemake.input.lesions[0] if snakemake.input.lesions else None,
    ),
)
