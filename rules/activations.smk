# Dataset activations (docs/method.md#imagenet-variant-a3): the image manifest of dataset.path, one
# streaming pass over the images it lists tapping every layer of the study, the top-k images of
# every unit, and one job per layer drawing the exemplar grids of its studied units.  The jobs'
# specs come from resstream/activations/jobs.py.
import re

from resstream.activations.jobs import (
    activations_spec,
    dataset_manifest_spec,
    exemplar_dirs,
    exemplar_grids_spec,
)
from resstream.base.paths import activations_h5, exemplar_dir
from resstream.data.image_manifest import image_manifest_tsv

ACTIVATIONS = PLAN.config["activations"]
MANIFEST_SPEC = dataset_manifest_spec(PLAN)
PASS_SPEC = activations_spec(PLAN)
GRIDS_SPEC = exemplar_grids_spec(PLAN)


rule dataset_manifest:
    output:
        tsv=image_manifest_tsv(RESULTS),
    log:
        f"{RESULTS}/logs/dataset_manifest.log",
    localrule: True
    conda:
        f"{ENVS}/torch.yaml"
    params:
        **MANIFEST_SPEC.params,
        code=code("dataset_manifest.py"),
    script:
        "../scripts/dataset_manifest.py"


rule activations:
    input:
        **PASS_SPEC.input,
    output:
        h5=activations_h5(RESULTS),
    log:
        f"{RESULTS}/logs/activations.log",
    benchmark:
        f"{RESULTS}/benchmarks/activations.tsv"
    conda:
        f"{ENVS}/torch.yaml"
    threads: ACTIVATIONS["threads"]
    resources:
        **PASS_SPEC.resources,
        gpu=gpu_per_job,
    params:
        **PASS_SPEC.params,
        gpu_slots=GPU_SLOTS,
        code=code("activations.py"),
    script:
        "../scripts/activations.py"


rule exemplar_grids:
    input:
        **GRIDS_SPEC.input,
    output:
        folder=directory(exemplar_dir(RESULTS, "{layer}")),
    log:
        f"{RESULTS}/logs/exemplar_grids/{{layer}}.log",
    wildcard_constraints:
        layer="|".join(re.escape(name) for name in PLAN.exemplar_units()) or "(?!)",
    conda:
        f"{ENVS}/torch.yaml"
    threads: ACTIVATIONS["threads"]
    resources:
        **GRIDS_SPEC.resources,
    params:
        **GRIDS_SPEC.params,
        code=code("exemplar_grids.py"),
    script:
        "../scripts/exemplar_grids.py"


FINAL_OUTPUTS += rules.activations.output
FINAL_OUTPUTS += exemplar_dirs(PLAN)
