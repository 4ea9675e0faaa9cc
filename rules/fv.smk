# Stage 1: feature visualizations, one job per (layer, channel chunk): fv_chunk (centre neuron) and
# fv_channel_chunk (whole map: the atlas's channel FVs, for the roles atlas.channel_fvs names).  Both
# run one script; their specs (channels, per-layer settings, budgets) come from resstream/fv/jobs.py.
import re

from resstream.base.paths import channel_fv_chunk_dir, fv_chunk_dir
from resstream.fv.jobs import all_fv_dirs, chunk_layers, fv_chunk_spec

FV = PLAN.config["fv"]
# allocation_slot: each FV job takes the one slot a cluster submission has (resstream/workflow/smk.py
# one_slot_per_allocation), so the jobs profiles/slurm groups run one after another on a GPU or CPUs
# alike; locally nothing caps it.
FV_RULES = {
    "center": ("fv_chunk", "fv", fv_chunk_dir),
    "channel": ("fv_channel_chunk", "channel_fv", channel_fv_chunk_dir),
}

for objective, (fv_rule, fv_folder, fv_dir) in FV_RULES.items():
    FV_SPEC = fv_chunk_spec(PLAN, objective, gpu_per_job)

    rule:
        name:
            fv_rule
        output:
            folder=directory(fv_dir(RESULTS, "{layer}", "{chunk}")),
        log:
            f"{RESULTS}/logs/{fv_folder}/{{layer}}/{{chunk}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/{fv_folder}/{{layer}}/{{chunk}}.tsv"
        wildcard_constraints:
            layer="|".join(re.escape(name) for name in chunk_layers(PLAN, objective))
            or "(?!)",
            chunk=r"c\d{4}-\d{4}",
        conda:
            f"{ENVS}/torch.yaml"
        threads: FV["threads"]
        resources:
            **FV_SPEC.resources,
            gpu=gpu_per_job,
            allocation_slot=1,
        params:
            **FV_SPEC.params,
            gpu_slots=GPU_SLOTS,
            code=code("fv_chunk.py"),
        script:
            "../scripts/fv_chunk.py"


FINAL_OUTPUTS += all_fv_dirs(PLAN)
