# Thin: one layer's exemplar grids from the activations file, with what the rule declares.
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.activations.exemplars import write_exemplar_grids  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

script_main(
    snakemake,
    lambda: write_exemplar_grids(
        snakemake.input.h5, snakemake.wildcards.layer, snakemake.params.channels, snakemake.output[0], snakemake.threads
    ),
)
