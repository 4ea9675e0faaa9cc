import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.atlas.write import atlas_block_job, atlas_index_job  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

script_main(snakemake, lambda: (atlas_index_job if snakemake.rule == "atlas_index" else atlas_block_job)(snakemake))
