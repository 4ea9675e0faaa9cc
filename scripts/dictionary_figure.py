import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.dictionary.figure import dictionary_figure_job  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

script_main(snakemake, lambda: dictionary_figure_job(snakemake))
