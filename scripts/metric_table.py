# Thin: measurement table in, metric table out (resstream/analysis/metrics.py, resstream/analysis/summary.py).
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.analysis.summary import derive_table  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

script_main(snakemake, lambda: derive_table(snakemake.input.csv, snakemake.output.csv, snakemake.params.analysis))
