# Stage 4: the unit atlas, a static HTML site under results/atlas (resstream/atlas.py).
# One job per block (its table page, unit pages and thumbnails), so changing one block's settings
# rebuilds only that block's folder; the index reads only the metric tables.
# The channel-objective FVs the unit pages show come from their own chunk jobs (atlas.channel_fvs).
import re

from resstream.paths import atlas_block_dir, atlas_dir, channel_fv_chunk_dir

ATLAS = STUDY.config["atlas"]
ATLAS_SETTINGS = {
    k: ATLAS[k] for k in ("channel_fvs", "fv_px", "top9_px", "row_px", "jpeg_quality")
}
CHANNEL_FV_LAYERS = STUDY.channel_fv_layers()


rule fv_channel_chunk:
    output:
        directory(channel_fv_chunk_dir(RESULTS, "{layer}", "{chunk}")),
    log:
        f"{RESULTS}/logs/fv_channel_chunks/{{layer}}/{{chunk}}.log",
    wildcard_constraints:
        layer="|".join(re.escape(name) for name in CHANNEL_FV_LAYERS) or "(?!)",
        chunk=r"c\d{4}-\d{4}",
    conda:
        f"{ENVS}/torch.yaml"
    threads: STUDY.config["fv"]["threads"]
    resources:
        gpu=GPU_PER_JOB,
    params:
        settings=lambda w: STUDY.fv_settings(w.layer).as_params(),
        channels=lambda w: list(
            STUDY.chunk(w.layer, w.chunk, STUDY.channel_fv_roles).channels
        ),
        model=STUDY.config["model"]["arch"],
        weights=WEIGHTS,
    script:
        "../scripts/fv_channel_chunk.py"


rule atlas_block:
    input:
        fv=lambda w: metric_table_csv(RESULTS, w.block, "fv"),
        imagenet=lambda w: metric_table_csv(RESULTS, w.block, "imagenet"),
        fv_images=lambda w: block_fv_chunk_dirs(w.block),
        channel_fvs=lambda w: block_channel_fv_dirs(w.block),
        exemplars=rules.exemplar_grids.output[0],
    output:
        directory(atlas_block_dir(RESULTS, "{block}")),
    log:
        f"{RESULTS}/logs/atlas/{{block}}.log",
    wildcard_constraints:
        block=BLOCK_PATTERN,
    conda:
        f"{ENVS}/torch.yaml"
    params:
        layers=lambda w: STUDY.block_layers(w.block),
        settings=ATLAS_SETTINGS,
    script:
        "../scripts/atlas.py"


rule atlas_index:
    input:
        blocks=[atlas_block_dir(RESULTS, b) for b in STUDY.study_blocks],
        fv=FV_TABLES,
        imagenet=IMAGENET_TABLES,
        scorecard=rules.paper_check.output.csv,
    output:
        html=f"{atlas_dir(RESULTS)}/index.html",
        css=f"{atlas_dir(RESULTS)}/atlas.css",
        js=f"{atlas_dir(RESULTS)}/atlas.js",
    log:
        f"{RESULTS}/logs/atlas/index.log",
    conda:
        f"{ENVS}/torch.yaml"
    params:
        blocks=STUDY.study_blocks,
    script:
        "../scripts/atlas.py"


if STUDY.atlas_enabled:
    FINAL_OUTPUTS += rules.atlas_index.output
