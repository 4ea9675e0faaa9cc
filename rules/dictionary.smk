# Dictionary features (off by default; dictionary.enabled): per studied block a TopK crosscoder trained
# on tokens streamed from the dataset (encoder on I+B, decoders into I, B, O), read on held-out images,
# and one figure of the features' M beside the channels' M.
import re

from resstream.dictionary.settings import feature_fv_settings
from resstream.dictionary.stage_scope import stage_groups
from resstream.workflow.job_resources import (
    fv_mem_mb,
    fv_runtime,
    pass_runtime,
    small_job_mem_mb,
)

DICTIONARY = STUDY.config["dictionary"]
DICTIONARY_ON = DICTIONARY["enabled"]
DICTIONARY_BLOCKS = (
    STUDY.study_blocks if DICTIONARY_ON and DICTIONARY["scope"] == "block" else []
)
# dictionary.scope: stage -> one crosscoder per network stage ("stage2": ["2.0", "2.1"])
DICTIONARY_STAGES = (
    stage_groups(STUDY.blocks, STUDY.study_blocks)
    if DICTIONARY_ON and DICTIONARY["scope"] == "stage"
    else {}
)


rule dictionary:
    output:
        folder=directory(f"{RESULTS}/dictionary/{{block}}"),
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
        gpu=gpu_per_job,
        # one truncated forward per image read, as the dataset pass
        runtime=lambda w, attempt: pass_runtime(
            DICTIONARY["tokens"] // DICTIONARY["positions_per_image"]
            + DICTIONARY["heldout_images"],
            attempt,
        ),
        mem_mb=lambda w, attempt: small_job_mem_mb(attempt),
    params:
        model=MODEL,
        device=DEVICE,
        dataset=STUDY.config["dataset"]["path"],
        on_bad_image=STUDY.config["dataset"]["on_bad_image"],
        o_relu=STUDY.o_relu,
        section={k: v for k, v in DICTIONARY.items() if k != "threads"},
        gpu_slots=GPU_SLOTS,
        code=code("dictionary.py"),
    script:
        "../scripts/dictionary.py"


# The stage-level variant: the same job for one network stage's blocks together.
use rule dictionary as dictionary_stage with:
    output:
        folder=directory(f"{RESULTS}/dictionary/{{stage}}"),
    log:
        f"{RESULTS}/logs/dictionary/{{stage}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dictionary/{{stage}}.tsv"
    wildcard_constraints:
        stage="|".join(DICTIONARY_STAGES) or "(?!)",
    params:
        model=MODEL,
        device=DEVICE,
        dataset=STUDY.config["dataset"]["path"],
        on_bad_image=STUDY.config["dataset"]["on_bad_image"],
        o_relu=STUDY.o_relu,
        section={k: v for k, v in DICTIONARY.items() if k != "threads"},
        gpu_slots=GPU_SLOTS,
        stage_blocks=lambda w: DICTIONARY_STAGES[w.stage],
        code=code("dictionary.py"),


rule dictionary_figure:
    input:
        folders=[f"{RESULTS}/dictionary/{b}" for b in DICTIONARY_BLOCKS],
        tables=[f"{RESULTS}/analysis/{b}/fv_table.csv" for b in DICTIONARY_BLOCKS],
    output:
        png=f"{RESULTS}/figures/dictionary_feature_m.png",
        summary=f"{RESULTS}/dictionary/summary.json",
    log:
        f"{RESULTS}/logs/dictionary/figure.log",
    localrule: True
    conda:
        f"{ENVS}/torch.yaml"
    params:
        blocks=DICTIONARY_BLOCKS,
        code=code("dictionary_figure.py"),
    script:
        "../scripts/dictionary_figure.py"


# Feature pictures: per block, for its dictionary.feature_pages most often firing features, the
# centre-position FV (objective: the encoder's pre-activation; the FV stage's engine and settings)
# and grids of the top held-out images and of the patches around the peak cell.
rule dictionary_pictures:
    input:
        folder=f"{RESULTS}/dictionary/{{block}}",
    output:
        folder=directory(f"{RESULTS}/dictionary_pictures/{{block}}"),
    log:
        f"{RESULTS}/logs/dictionary_pictures/{{block}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dictionary_pictures/{{block}}.tsv"
    wildcard_constraints:
        block="|".join(re.escape(b) for b in DICTIONARY_BLOCKS) or "(?!)",
    conda:
        f"{ENVS}/torch.yaml"
    threads: STUDY.config["fv"]["threads"]
    resources:
        gpu=gpu_per_job,
        allocation_slot=1,
        runtime=lambda w, attempt: fv_runtime(
            DICTIONARY["feature_pages"],
            feature_fv_settings(STUDY, w.block).steps,
            gpu_per_job(),
            attempt,
        ),
        mem_mb=lambda w, attempt: fv_mem_mb(DICTIONARY["feature_pages"], attempt),
        log_every=STUDY.config["fv"]["log_every"],
    params:
        model=MODEL,
        device=DEVICE,
        gpu_slots=GPU_SLOTS,
        o_relu=STUDY.o_relu,
        features=DICTIONARY["feature_pages"],
        page_channels=DICTIONARY["page_channels"],
        dataset=STUDY.config["dataset"]["path"],
        settings=lambda w: feature_fv_settings(STUDY, w.block).as_params(),
        code=code("dictionary_pictures.py"),
    script:
        "../scripts/dictionary_pictures.py"


def dictionary_pictures_dirs(block):
    """The block's dictionary pictures folder, which its atlas pages link, or none when the stage is off."""
    return (
        f"{RESULTS}/dictionary_pictures/{block}" if block in DICTIONARY_BLOCKS else []
    )


# The atlas's feature pages of a block (resstream/atlas/dictionary_pages.py), linked from its block
# and unit pages (rule atlas_block declares the pictures folder they read).
rule atlas_dictionary:
    input:
        dictionary=f"{RESULTS}/dictionary/{{block}}",
        pictures=f"{RESULTS}/dictionary_pictures/{{block}}",
    output:
        directory(f"{atlas_dir(RESULTS)}/dictionary/{{block}}"),
    log:
        f"{RESULTS}/logs/atlas/dictionary/{{block}}.log",
    wildcard_constraints:
        block="|".join(re.escape(b) for b in DICTIONARY_BLOCKS) or "(?!)",
    conda:
        f"{ENVS}/torch.yaml"
    resources:
        mem_mb=lambda w, attempt: small_job_mem_mb(attempt),
    params:
        settings=ATLAS_SETTINGS,
        studied=lambda w: STUDY.block_channels(w.block),
        code=code("atlas_dictionary.py"),
    script:
        "../scripts/atlas_dictionary.py"


if DICTIONARY_BLOCKS:
    FINAL_OUTPUTS += rules.dictionary_figure.output
    FINAL_OUTPUTS += [f"{RESULTS}/dictionary/{b}" for b in DICTIONARY_BLOCKS]
    FINAL_OUTPUTS += [f"{RESULTS}/dictionary_pictures/{b}" for b in DICTIONARY_BLOCKS]
    if STUDY.atlas_enabled:
        FINAL_OUTPUTS += [
            f"{atlas_dir(RESULTS)}/dictionary/{b}" for b in DICTIONARY_BLOCKS
        ]
FINAL_OUTPUTS += [f"{RESULTS}/dictionary/{s}" for s in DICTIONARY_STAGES]
