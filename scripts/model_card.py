# Thin: the model card from what the rule declares (params: model, card facts).
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.model.card import write_model_card  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

script_main(
    snakemake,
    lambda: write_model_card(snakemake.params.model, snakemake.params.card, snakemake.output.json, snakemake.output.csv),
)
