# Dataset activations (docs/method.md#imagenet-variant-a3): one streaming pass over dataset.path tapping every layer of
# the study, the top-k images of every unit, and one job per layer drawing the exemplar grids of its
# studied units. params hold only what changes the results: batch size, workers and threads are
# resources (how the job runs), so they rerun nothing.
import re

from resstream.workflow.job_resources import (
    pass_mem_mb,
    pass_runtime,
    per_unit_runtime,
    small_job_mem_mb,
)
from resstream.base.paths import activations_h5, exemplar_dir

ACTIVATIONS = STUDY.config["activations"]
EXEMPLAR_UNITS = STUDY.exemplar_units()
# the pass's arguments (model, dataset, layers, ...; batch size, workers, log frequency), as the
# library's extract_activations and the benchmarks take them too
PASS = STUDY.activations_pass()


rule activations:
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
        **PASS["resources"],
        gpu=gpu_per_job,
        runtime=lambda w, attempt: pass_runtime(
            dataset_images(PASS["params"]["dataset"]), attempt
        ),
        mem_mb=lambda w, attempt: pass_mem_mb(
            PASS["resources"]["batch_size"],
            PASS["resources"]["workers"],
            STUDY.spatial_bytes_per_image(),
            attempt,
        ),
    params:
        **PASS["params"],
        gpu_slots=GPU_SLOTS,
        code=code("activations.py"),
    script:
        "../scripts/activations.py"


# One job per layer draws its studied units' grids; the layer's channels are a param, so a new
# channel selection redraws only the layers it touches.
rule exemplar_grids:
    input:
        h5=rules.activations.output.h5,
    output:
        directory(exemplar_dir(RESULTS, "{layer}")),
    log:
        f"{RESULTS}/logs/exemplar_grids/{{layer}}.log",
    wildcard_constraints:
        layer="|".join(re.escape(name) for name in EXEMPLAR_UNITS) or "(?!)",
    conda:
        f"{ENVS}/torch.yaml"
    threads: ACTIVATIONS["threads"]
    resources:
        runtime=lambda w, attempt: per_unit_runtime(
            "exemplar_grids", len(EXEMPLAR_UNITS[w.layer]), attempt
        ),
        mem_mb=lambda w, attempt: small_job_mem_mb(attempt),
    params:
        channels=lambda w: EXEMPLAR_UNITS[w.layer],
        code=code("exemplar_grids.py"),
    script:
        "../scripts/exemplar_grids.py"


FINAL_OUTPUTS += rules.activations.output
FINAL_OUTPUTS += [exemplar_dir(RESULTS, layer) for layer in EXEMPLAR_UNITS]
