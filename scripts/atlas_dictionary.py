import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.atlas.dictionary_pages import atlas_dictionary_job  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

script_main(snakemake, lambda: atlas_dictionary_job(snakemake))
