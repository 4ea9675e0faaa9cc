# Stage 4: the unit atlas, a static HTML site under results/atlas (resstream/atlas/).
# One job per block (its table page, unit pages and thumbnails), so changing one block's settings
# rebuilds only that block's folder; the index reads the summary's counts, the FV tables' M values
# and the scorecard.  The channel-objective FVs the unit pages (and Figs 1 and 6) show come from
# rules/fv.smk's fv_channel_chunk.  The jobs' specs come from resstream/atlas/jobs.py.
from resstream.atlas.jobs import atlas_block_spec, atlas_index_spec
from resstream.base.paths import atlas_block_dir, atlas_dir

ATLAS_BLOCK_SPEC = atlas_block_spec(PLAN)
ATLAS_INDEX_SPEC = atlas_index_spec(PLAN)


rule atlas_block:
    input:
        **ATLAS_BLOCK_SPEC.input,
    output:
        folder=directory(atlas_block_dir(RESULTS, "{block}")),
    log:
        f"{RESULTS}/logs/atlas/{{block}}.log",
    wildcard_constraints:
        block=BLOCK_PATTERN,
    conda:
        f"{ENVS}/torch.yaml"
    resources:
        **ATLAS_BLOCK_SPEC.resources,
    params:
        **ATLAS_BLOCK_SPEC.params,
        code=code("atlas.py"),
    script:
        "../scripts/atlas.py"


rule atlas_index:
    input:
        **ATLAS_INDEX_SPEC.input,
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
        **ATLAS_INDEX_SPEC.params,
        code=code("atlas.py"),
    script:
        "../scripts/atlas.py"


if PLAN.atlas_enabled:
    FINAL_OUTPUTS += rules.atlas_index.output
