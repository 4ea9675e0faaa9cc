# Stage 1: centre-neuron feature visualizations, one job per (layer, channel chunk).
# Per-layer settings and the chunk's channels are params: changing one block's steps or jitter
# replans only that block's jobs (and what reads them), a new channel list only the chunks it touches.
import re

from resstream.workflow.job_resources import fv_mem_mb, fv_runtime

FV = STUDY.config["fv"]
# allocation_slot: each FV job (centre or channel objective) takes the one slot a cluster submission
# has (resstream/workflow/smk.py one_slot_per_allocation), so the jobs profiles/slurm groups run one
# after another on a GPU or CPUs alike; locally nothing caps it.


rule fv_chunk:
    output:
        directory(f"{RESULTS}/fv/{{layer}}/{{chunk}}"),
    log:
        f"{RESULTS}/logs/fv/{{layer}}/{{chunk}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fv/{{layer}}/{{chunk}}.tsv"
    wildcard_constraints:
        layer="|".join(re.escape(name) for name in STUDY.layers),
        chunk=r"c\d{4}-\d{4}",
    conda:
        f"{ENVS}/torch.yaml"
    threads: FV["threads"]
    resources:
        gpu=gpu_per_job,
        allocation_slot=1,
        runtime=lambda w, attempt: fv_runtime(
            len(fv_units(w.layer, w.chunk)),
            STUDY.fv_settings(w.layer).steps,
            gpu_per_job(),
            attempt,
        ),
        mem_mb=lambda w, attempt: fv_mem_mb(len(fv_units(w.layer, w.chunk)), attempt),
        log_every=FV["log_every"],
    params:
        model=MODEL,
        device=DEVICE,
        gpu_slots=GPU_SLOTS,
        channels=lambda w: fv_units(w.layer, w.chunk),
        settings=lambda w: STUDY.fv_settings(w.layer).as_params(),
        objective="center",
        code=code("fv_chunk.py"),
    script:
        "../scripts/fv_chunk.py"


FINAL_OUTPUTS += [
    directory for layer in STUDY.layers for directory in fv_chunk_dirs(layer)
]
