# Dictionary features (off by default; dictionary.enabled): per studied block a TopK crosscoder trained
# on tokens streamed from the dataset (encoder on I+B, decoders into I, B, O), read on held-out images,
# or one per network stage (dictionary.scope: stage); per block its feature pictures and atlas pages,
# and one figure of the features' M beside the channels' M.  The jobs' specs come from
# resstream/dictionary/jobs.py (the feature pages' from resstream/atlas/jobs.py).
import re

from resstream.atlas.jobs import atlas_dictionary_spec
from resstream.base.paths import atlas_dir, dictionary_dir, dictionary_pictures_dir
from resstream.dictionary.jobs import (
    dictionary_blocks,
    dictionary_dirs,
    dictionary_figure_spec,
    dictionary_pictures_spec,
    dictionary_spec,
    dictionary_stage_spec,
    dictionary_stages,
)

DICTIONARY = PLAN.config["dictionary"]
DICTIONARY_BLOCKS = dictionary_blocks(PLAN)
DICTIONARY_STAGES = dictionary_stages(PLAN)
DICTIONARY_SPEC = dictionary_spec(PLAN)
DICTIONARY_STAGE_SPEC = dictionary_stage_spec(PLAN)
DICTIONARY_PICTURES_SPEC = dictionary_pictures_spec(PLAN, gpu_per_job)
DICTIONARY_FIGURE_SPEC = dictionary_figure_spec(PLAN)
ATLAS_DICTIONARY_SPEC = atlas_dictionary_spec(PLAN)


rule dictionary:
    input:
        **DICTIONARY_SPEC.input,
    output:
        folder=directory(dictionary_dir(RESULTS, "{block}")),
    log:
        f"{RESULTS}/logs/dictionary/{{block}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dictionary/{{block}}.tsv"
    wildcard_constraints:
        block="|".join(re.escape(b) for b in DICTIONARY_BLOCKS) or "(?!)",
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


# The stage-level variant: the same job for one network stage's blocks together.
use rule dictionary as dictionary_stage with:
    output:
        folder=directory(dictionary_dir(RESULTS, "{stage}")),
    log:
        f"{RESULTS}/logs/dictionary/{{stage}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dictionary/{{stage}}.tsv"
    wildcard_constraints:
        stage="|".join(DICTIONARY_STAGES) or "(?!)",
    params:
        **DICTIONARY_STAGE_SPEC.params,
        gpu_slots=GPU_SLOTS,
        code=code("dictionary.py"),


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


# Feature pictures: per block, for its dictionary.feature_pages most often firing features, the
# centre-position FV (objective: the encoder's pre-activation; the FV stage's engine and settings)
# and grids of the top held-out images and of the patches around the peak cell.
rule dictionary_pictures:
    input:
        **DICTIONARY_PICTURES_SPEC.input,
    output:
        folder=directory(dictionary_pictures_dir(RESULTS, "{block}")),
    log:
        f"{RESULTS}/logs/dictionary_pictures/{{block}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dictionary_pictures/{{block}}.tsv"
    wildcard_constraints:
        block="|".join(re.escape(b) for b in DICTIONARY_BLOCKS) or "(?!)",
    conda:
        f"{ENVS}/torch.yaml"
    threads: PLAN.config["fv"]["threads"]
    resources:
        **DICTIONARY_PICTURES_SPEC.resources,
        gpu=gpu_per_job,
        allocation_slot=1,
    params:
        **DICTIONARY_PICTURES_SPEC.params,
        gpu_slots=GPU_SLOTS,
        code=code("dictionary_pictures.py"),
    script:
        "../scripts/dictionary_pictures.py"


# The atlas's feature pages of a block (resstream/atlas/dictionary_pages.py), linked from its block
# and unit pages (rule atlas_block declares the pictures folder they read).
rule atlas_dictionary:
    input:
        **ATLAS_DICTIONARY_SPEC.input,
    output:
        directory(f"{atlas_dir(RESULTS)}/dictionary/{{block}}"),
    log:
        f"{RESULTS}/logs/atlas/dictionary/{{block}}.log",
    wildcard_constraints:
        block="|".join(re.escape(b) for b in DICTIONARY_BLOCKS) or "(?!)",
    conda:
        f"{ENVS}/torch.yaml"
    resources:
        **ATLAS_DICTIONARY_SPEC.resources,
    params:
        **ATLAS_DICTIONARY_SPEC.params,
        code=code("atlas_dictionary.py"),
    script:
        "../scripts/atlas_dictionary.py"


if DICTIONARY_BLOCKS or DICTIONARY_STAGES:
    FINAL_OUTPUTS += dictionary_dirs(PLAN)
if DICTIONARY_BLOCKS:
    FINAL_OUTPUTS += rules.dictionary_figure.output
    FINAL_OUTPUTS += [dictionary_pictures_dir(RESULTS, b) for b in DICTIONARY_BLOCKS]
    if PLAN.atlas_enabled:
        FINAL_OUTPUTS += [
            f"{atlas_dir(RESULTS)}/dictionary/{b}" for b in DICTIONARY_BLOCKS
        ]
