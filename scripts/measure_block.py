import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.workflow.job_runner import job_gpus, script_main  # noqa: E402

gpus = job_gpus(snakemake)  # before torch is imported
from resstream.analysis.measure_job import measure_job  # noqa: E402

script_main(snakemake, lambda: measure_job(snakemake, gpus))
