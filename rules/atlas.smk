# Stage 4: the unit atlas, a static HTML site under results/atlas (resstream/atlas/).
# One job per block (its table page, unit pages and thumbnails), so changing one block's settings
# rebuilds only that block's folder; the index reads the summary's counts and the FV tables' M values.
# The channel-objective FVs the unit pages (and Figs 1 and 6) show come from their own chunk jobs, per
# (layer, chunk), for the roles atlas.channel_fvs names; each gets its own layer's settings only.
import re

from resstream.workflow.job_resources import (
    fv_mem_mb,
    fv_runtime,
    per_unit_runtime,
    small_job_mem_mb,
)
from resstream.base.paths import atlas_block_dir, atlas_dir, channel_fv_chunk_dir

ATLAS = STUDY.config["atlas"]
ATLAS_SETTINGS = {
    k: ATLAS[k] for k in ("channel_fvs", "fv_px", "top9_px", "row_px", "jpeg_quality")
}
CHANNEL_FV_LAYERS = STUDY.channel_fv_layers()


rule fv_channel_chunk:
    output:
        directory(channel_fv_chunk_dir(RESULTS, "{layer}", "{chunk}")),
    log:
        f"{RESULTS}/logs/channel_fv/{{layer}}/{{chunk}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/channel_fv/{{layer}}/{{chunk}}.tsv"
    wildcard_constraints:
        layer="|".join(re.escape(name) for name in CHANNEL_FV_LAYERS) or "(?!)",
        chunk=r"c\d{4}-\d{4}",
    conda:
        f"{ENVS}/torch.yaml"
    threads: FV["threads"]
    resources:
        gpu=gpu_per_job,
        allocation_slot=1,
        runtime=lambda w, attempt: fv_runtime(
            len(fv_units(w.layer, w.chunk, STUDY.channel_fv_roles)),
            STUDY.fv_settings(w.layer, "channel").steps,
            gpu_per_job(),
            attempt,
        ),
        mem_mb=lambda w, attempt: fv_mem_mb(
            len(fv_units(w.layer, w.chunk, STUDY.channel_fv_roles)), attempt
        ),
        log_every=FV["log_every"],
    params:
        model=MODEL,
        device=DEVICE,
        gpu_slots=GPU_SLOTS,
        channels=lambda w: fv_units(w.layer, w.chunk, STUDY.channel_fv_roles),
        settings=lambda w: STUDY.fv_settings(w.layer, "channel").as_params(),
        objective="channel",
        code=code("fv_chunk.py"),
    script:
        "../scripts/fv_chunk.py"


rule atlas_block:
    input:
        fv=lambda w: metric_table_csv(RESULTS, w.block, "fv"),
        imagenet=lambda w: metric_table_csv(RESULTS, w.block, "imagenet"),
        fv_images=lambda w: block_fv_chunk_dirs(w.block),
        channel_fvs=lambda w: block_channel_fv_dirs(w.block),
        exemplars=lambda w: block_exemplar_dirs(w.block),
        # the block's dictionary pictures (their pages are linked) when the dictionary stage is on
        dictionary_pictures=lambda w: dictionary_pictures_dirs(w.block),
    output:
        directory(atlas_block_dir(RESULTS, "{block}")),
    log:
        f"{RESULTS}/logs/atlas/{{block}}.log",
    wildcard_constraints:
        block=BLOCK_PATTERN,
    conda:
        f"{ENVS}/torch.yaml"
    resources:
        runtime=lambda w, attempt: per_unit_runtime(
            "atlas_block", len(STUDY.block_channels(w.block)), attempt
        ),
        mem_mb=lambda w, attempt: small_job_mem_mb(attempt),
    params:
        layers=lambda w: STUDY.block_layers(w.block),
        settings=ATLAS_SETTINGS,
        code=code("atlas.py"),
    script:
        "../scripts/atlas.py"


rule atlas_index:
    input:
        blocks=[atlas_block_dir(RESULTS, b) for b in STUDY.study_blocks],
        fv=FV_TABLES,
        summary=rules.analysis_summary.output.json,
        scorecard=rules.paper_check.output.csv,
    output:
        html=f"{atlas_dir(RESULTS)}/index.html",
        css=f"{atlas_dir(RESULTS)}/atlas.css",
        js=f"{atlas_dir(RESULTS)}/atlas.js",
    log:
        f"{RESULTS}/logs/atlas/index.log",
    localrule: True
    conda:
        f"{ENVS}/torch.yaml"
    params:
        blocks=STUDY.study_blocks,
        code=code("atlas.py"),
    script:
        "../scripts/atlas.py"


if STUDY.atlas_enabled:
    FINAL_OUTPUTS += rules.atlas_index.output
