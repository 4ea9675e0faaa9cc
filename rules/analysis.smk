# Stage 3: measurements, metric tables, summary and Figs 1-8 (docs/method.md).
# Per block: measure (heavy: forwards of FVs / top-9 images) -> metric table (cheap; holds the
# analysis settings as params, so changing mix_factor or scale_rule never re-measures).
# Figures and summary.json read only the tables (and the pictures they show); the eight figure
# rules are made from one registry (resstream.analysis.summary.FIGURE_READS).
# `snakemake --report report.html` embeds the PNGs.
import re

from resstream.analysis.summary import (
    FIG34,
    FIGURES,
    TABLE_SETTINGS,
    fig3_fig4_blocks,
    figure_file,
    raw_table_csv,
    summary_json,
)
from resstream.base.paths import ablation_file, activations_h5
from resstream.analysis.scorecard import CLAIMS_PATH, scorecard_outputs

ANALYSIS = STUDY.config["analysis"]
ANALYSIS_SETTINGS = {k: ANALYSIS[k] for k in TABLE_SETTINGS}
FIG34_BLOCKS = fig3_fig4_blocks(STUDY, ANALYSIS["fig3_fig4_blocks"])
BLOCK_PATTERN = "|".join(re.escape(b) for b in STUDY.study_blocks)
SCORECARD = scorecard_outputs(RESULTS)


FV_TABLES = [metric_table_csv(RESULTS, b, "fv") for b in STUDY.study_blocks]
IMAGENET_TABLES = [metric_table_csv(RESULTS, b, "imagenet") for b in STUDY.study_blocks]
ALL_FV_DIRS = [d for layer in STUDY.layers for d in fv_chunk_dirs(layer)]
ALL_CHANNEL_FV_DIRS = [d for b in STUDY.study_blocks for d in block_channel_fv_dirs(b)]
ALL_EXEMPLAR_DIRS = sorted(
    {d for b in STUDY.study_blocks for d in block_exemplar_dirs(b)}
)


report: "../report/workflow.rst"


# The two measurements of a block (on its FVs, docs/method.md#measurements; on the dataset's top images, docs/method.md#imagenet-variant-a3): one
# rule each, the same job but for what it reads (the FV measurement also reads the block's FVs).
for stimulus in ("fv", "imagenet"):

    rule:
        name:
            f"measure_{stimulus}"
        input:
            fv=(lambda w: block_fv_chunk_dirs(w.block)) if stimulus == "fv" else [],
            activations=activations_h5(RESULTS),
        output:
            csv=raw_table_csv(RESULTS, "{block}", stimulus),
            json=raw_table_csv(RESULTS, "{block}", stimulus).replace(".csv", ".json"),
        log:
            f"{RESULTS}/logs/analysis/measure_{stimulus}_{{block}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/analysis/measure_{stimulus}_{{block}}.tsv"
        wildcard_constraints:
            block=BLOCK_PATTERN,
        conda:
            f"{ENVS}/torch.yaml"
        threads: ANALYSIS["threads"]
        resources:
            **measurement_resources(stimulus),
            gpu=gpu_per_job,
            batch_size=ANALYSIS["batch_size"],
        params:
            stimulus=stimulus,
            model=MODEL,
            device=DEVICE,
            gpu_slots=GPU_SLOTS,
            o_relu=STUDY.o_relu,
            channels=lambda w: STUDY.block_channels(w.block),
            code=code("measure_block.py"),
        script:
            "../scripts/measure_block.py"


rule metric_table:
    input:
        csv=f"{RESULTS}/analysis/{{block}}/{{stimulus}}_raw.csv",
    output:
        csv=f"{RESULTS}/analysis/{{block}}/{{stimulus}}_table.csv",
        json=f"{RESULTS}/analysis/{{block}}/{{stimulus}}_table.json",
    log:
        f"{RESULTS}/logs/analysis/metric_table_{{block}}_{{stimulus}}.log",
    wildcard_constraints:
        block=BLOCK_PATTERN,
        stimulus="fv|imagenet",
    localrule: True
    conda:
        f"{ENVS}/torch.yaml"
    params:
        analysis=ANALYSIS_SETTINGS,
        code=code("metric_table.py"),
    script:
        "../scripts/metric_table.py"


rule analysis_summary:
    input:
        fv=FV_TABLES,
        imagenet=IMAGENET_TABLES,
    output:
        json=summary_json(RESULTS),
    log:
        f"{RESULTS}/logs/analysis/summary.log",
    localrule: True
    conda:
        f"{ENVS}/torch.yaml"
    params:
        blocks=STUDY.study_blocks,
        fig34_blocks=FIG34_BLOCKS,
        code=code("analysis_summary.py"),
    script:
        "../scripts/analysis_summary.py"


for fig, fig_rule in FIGURES.items():

    rule:
        name:
            fig_rule
        input:
            **figure_inputs(fig),
        output:
            png=report(
                figure_file(RESULTS, fig, "png"),
                caption=f"../report/{fig}.rst",
                category="Figures",
            ),
            pdf=figure_file(RESULTS, fig, "pdf"),
        log:
            f"{RESULTS}/logs/figures/{fig}.log",
        localrule: True
        conda:
            f"{ENVS}/torch.yaml"
        params:
            figure=fig,
            blocks=FIG34_BLOCKS if fig in FIG34 else STUDY.study_blocks,
            options=figure_options(fig),
            code=code("figure.py"),
        script:
            "../scripts/figure.py"


# The reproduction scorecard: every claim of resstream/analysis/paper_claims.yaml against the tables.
rule paper_check:
    input:
        fv=FV_TABLES,
        imagenet=IMAGENET_TABLES,
        claims=CLAIMS_PATH,
        # the follow-up paper's rows compare its lesions, when the ablation stage runs
        lesions=(
            [ablation_file(RESULTS, "lesion_ratios.csv")]
            if STUDY.config["ablation"]["enabled"]
            else []
        ),
    output:
        csv=SCORECARD["csv"],
        md=SCORECARD["md"],
        html=report(
            SCORECARD["html"],
            caption="../report/paper_check.rst",
            category="Reproduction scorecard",
        ),
    log:
        f"{RESULTS}/logs/analysis/paper_check.log",
    localrule: True
    conda:
        f"{ENVS}/torch.yaml"
    params:
        blocks=STUDY.study_blocks,
        block_channels={b: STUDY.block_info(b).channels for b in STUDY.study_blocks},
        readings=ANALYSIS["scorecard"],
        code=code("paper_check.py"),
    script:
        "../scripts/paper_check.py"


FINAL_OUTPUTS += rules.analysis_summary.output
FINAL_OUTPUTS += list(rules.paper_check.output)
FINAL_OUTPUTS += [
    figure_file(RESULTS, fig, fmt) for fig in FIGURES for fmt in ("png", "pdf")
]
