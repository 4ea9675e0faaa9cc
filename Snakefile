# resstream: the residual-stream study of ResNet18 (Longon, arXiv 2407.05340) as a workflow.
# All logic lives in the resstream/ library; each rules/*.smk file is one stage and adds its final
# outputs to FINAL_OUTPUTS.
from snakemake.utils import min_version

# localrule:, rule name: in loops, --set-resource-scopes and the default-target rule below
min_version("9.0")

import sys

sys.path.insert(0, workflow.basedir)
from resstream.workflow.smk import check_yaml_or_exit

# a broken config.yaml: one line naming its line (Snakemake's own message names no line)
check_yaml_or_exit("config.yaml")


configfile: "config.yaml"


# common.smk validates the config against resstream/schemas/config.schema.yaml (one line naming the key).
include: "rules/common.smk"
include: "rules/model.smk"
include: "rules/activations.smk"
include: "rules/fv.smk"
include: "rules/analysis.smk"
include: "rules/atlas.smk"
include: "rules/compare.smk"
include: "rules/ablation.smk"
include: "rules/dictionary.smk"


# Snakemake 9 takes its default target only from a rule written in the Snakefile itself (a first
# rule or default_target in an included file is ignored), so the one target rule lives here.
rule all:
    default_target: True
    input:
        FINAL_OUTPUTS,
