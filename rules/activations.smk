# Dataset activations (spec §6, §8, §13): one streaming pass over dataset.path tapping every layer of
# the study, the top-k images of every unit, and the exemplar grids of the studied units.
# params hold only what changes the results: batch size, workers and threads do not.
from resstream.activations import exemplar_units
from resstream.paths import activations_h5

ACTIVATIONS = STUDY.config["activations"]


rule activations:
    output:
        h5=activations_h5(RESULTS),
    log:
        f"{RESULTS}/logs/activations.log",
    conda:
        f"{ENVS}/torch.yaml"
    threads: ACTIVATIONS["threads"]
    resources:
        gpu=GPU_PER_JOB,
    params:
        arch=STUDY.arch,
        weights=WEIGHTS,
        blocks=STUDY.study_blocks,
        o_relu=STUDY.o_relu,
        dataset=STUDY.config["dataset"],
        topk=ACTIVATIONS["topk"],
        spatial_layers=ACTIVATIONS["spatial_layers"],
    script:
        "../scripts/activations.py"


# One job draws every studied unit's grid (a few thousand PNGs); the unit list is a param, so a new
# channel selection redraws them.
rule exemplar_grids:
    input:
        h5=rules.activations.output.h5,
    output:
        directory(f"{RESULTS}/activations/exemplars"),
    log:
        f"{RESULTS}/logs/exemplar_grids.log",
    conda:
        f"{ENVS}/torch.yaml"
    threads: ACTIVATIONS["threads"]
    params:
        units=exemplar_units(STUDY),
    script:
        "../scripts/exemplar_grids.py"


FINAL_OUTPUTS += rules.activations.output
FINAL_OUTPUTS += rules.exemplar_grids.output
