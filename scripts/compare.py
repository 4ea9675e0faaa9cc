# Thin: the runs' results folders in, the comparison figure and tables out (resstream/compare.py).
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.compare import compare_runs  # noqa: E402
from resstream.smk import script_main  # noqa: E402

script_main(
    snakemake,
    lambda cfg: compare_runs(dict(snakemake.params.runs), snakemake.params.out, snakemake.params.depth_bins),
)
