# Thin: per-block tables (and the FV / exemplar / channel-FV folders) in, one figure as PNG + PDF out
# (resstream/analysis/figures.py).  Which figure is params.figure, its options params.options.
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.analysis.figures import make_figure  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

params, given = snakemake.params, snakemake.input
blocks = params.blocks
script_main(
    snakemake,
    lambda: make_figure(
        params.figure,
        dict(zip(blocks, given.fv)),
        dict(zip(blocks, given.get("imagenet", []))),
        snakemake.output.png,
        snakemake.output.pdf,
        fv_dirs=given.get("fv_images", []),
        exemplar_dirs=given.get("exemplars", []),
        channel_fv_dirs=given.get("channel_fvs", []),
        **params.options,
    ),
)
