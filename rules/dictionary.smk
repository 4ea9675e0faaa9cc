# Dictionary features (off by default; dictionary.enabled): per studied block a TopK crosscoder trained
# on tokens streamed from the dataset (encoder on I+B, decoders into I, B, O), read on held-out images,
# and one figure of the features' M beside the channels' M.  The jobs' specs come from
# resstream/dictionary/jobs.py.
import re

from resstream.dictionary.jobs import (
    dictionary_blocks,
    dictionary_dirs,
    dictionary_figure_spec,
    dictionary_spec,
)

DICTIONARY = PLAN.config["dictionary"]
DICTIONARY_SPEC = dictionary_spec(PLAN)
DICTIONARY_FIGURE_SPEC = dictionary_figure_spec(PLAN)


rule dictionary:
    input:
        **DICTIONARY_SPEC.input,
    output:
        folder=directory(f"{RESULTS}/dictionary/{{block}}"),
    log:
        f"{RESULTS}/logs/dictionary/{{block}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dictionary/{{block}}.tsv"
    wildcard_constraints:
        block="|".join(re.escape(b) for b in dictionary_blocks(PLAN)) or "(?!)",
    conda:
        f"{ENVS}/torch.yaml"
    threads: DICTIONARY["threads"]
    resources:
        **DICTIONARY_SPEC.resources,
        gpu=gpu_per_job,
    params:
        **DICTIONARY_SPEC.params,
        gpu_slots=GPU_SLOTS,
        code=code("dictionary.py"),
    script:
        "../scripts/dictionary.py"


rule dictionary_figure:
    input:
        **DICTIONARY_FIGURE_SPEC.input,
    output:
        png=f"{RESULTS}/figures/dictionary_feature_m.png",
        summary=f"{RESULTS}/dictionary/summary.json",
    log:
        f"{RESULTS}/logs/dictionary/figure.log",
    localrule: True
    conda:
        f"{ENVS}/torch.yaml"
    params:
        **DICTIONARY_FIGURE_SPEC.params,
        code=code("dictionary_figure.py"),
    script:
        "../scripts/dictionary_figure.py"


if dictionary_blocks(PLAN):
    FINAL_OUTPUTS += rules.dictionary_figure.output
    FINAL_OUTPUTS += dictionary_dirs(PLAN)
