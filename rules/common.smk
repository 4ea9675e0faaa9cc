# Shared set-up: config validation, the study plan and the paths every stage uses.
import sys

from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)

from resstream.smk import check_config_or_exit  # noqa: E402

# Our check first: it names the offending key in one line (snakemake's own prints the schema).
STUDY = check_config_or_exit(config, workflow.basedir)


validate(config, "../schemas/config.schema.yaml")


RESULTS = STUDY.config["results"]
ENVS = f"{workflow.basedir}/envs"
FINAL_OUTPUTS = []
