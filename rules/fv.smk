# Stage 1: centre-neuron feature visualizations, one job per (layer, channel chunk).
# Per-layer settings and the chunk's channels are params: changing one block's steps or jitter
# replans only that block's jobs (and what reads them), a new channel list only the chunks it touches.
import re


rule fv_chunk:
    output:
        directory(f"{RESULTS}/fv/{{layer}}/{{chunk}}"),
    log:
        f"{RESULTS}/logs/fv/{{layer}}/{{chunk}}.log",
    wildcard_constraints:
        layer="|".join(re.escape(name) for name in STUDY.layers),
        chunk=r"c\d{4}-\d{4}",
    conda:
        f"{ENVS}/torch.yaml"
    threads: STUDY.config["fv"]["threads"]
    resources:
        gpu=GPU_PER_JOB,
    params:
        settings=lambda w: STUDY.fv_settings(w.layer).as_params(),
        channels=lambda w: list(STUDY.chunk(w.layer, w.chunk).channels),
        model=STUDY.config["model"]["arch"],
        weights=WEIGHTS,
    script:
        "../scripts/fv_chunk.py"


FINAL_OUTPUTS += [
    directory for layer in STUDY.layers for directory in fv_chunk_dirs(layer)
]
