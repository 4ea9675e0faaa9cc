import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.workflow.job_runner import job_gpus, script_main  # noqa: E402

gpus = job_gpus(snakemake)  # before torch is imported
from resstream.dictionary.feature_fv import dictionary_pictures_job  # noqa: E402

script_main(snakemake, lambda: dictionary_pictures_job(snakemake, gpus))
