# Thin: the runs' results folders in, the comparison figure and tables out (resstream/compare/runs.py).
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.compare.runs import compare_runs  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

params = snakemake.params
script_main(snakemake, lambda: compare_runs(dict(params.runs), params.out, params.depth_bins))
