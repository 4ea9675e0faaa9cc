# Stage 3: measurements, metric tables, summary and Figs 1-8 (spec §3-§8).
# Per block: measure (heavy: forwards of FVs / top-9 images) -> metric table (cheap; holds the
# analysis settings as params, so changing mix_factor or scale_rule never re-measures).
# Figures and summary.json read only the tables; `snakemake --report report.html` embeds the PNGs.
import re

from resstream.analysis import (
    FIGURES,
    TABLE_SETTINGS,
    fig3_fig4_blocks,
    figure_file,
    metric_table_csv,
    raw_table_csv,
    summary_json,
)
from resstream.paths import activations_h5
from resstream.scorecard import CLAIMS_PATH, scorecard_outputs

ANALYSIS = STUDY.config["analysis"]
ANALYSIS_SETTINGS = {k: ANALYSIS[k] for k in TABLE_SETTINGS}
FIG34_BLOCKS = fig3_fig4_blocks(STUDY, ANALYSIS["fig3_fig4_blocks"])
BLOCK_PATTERN = "|".join(re.escape(b) for b in STUDY.study_blocks)
SCORECARD = scorecard_outputs(RESULTS)


FV_TABLES = [metric_table_csv(RESULTS, b, "fv") for b in STUDY.study_blocks]
FIG34_FV_TABLES = [metric_table_csv(RESULTS, b, "fv") for b in FIG34_BLOCKS]
IMAGENET_TABLES = [metric_table_csv(RESULTS, b, "imagenet") for b in STUDY.study_blocks]
ALL_FV_DIRS = [d for layer in STUDY.layers for d in fv_chunk_dirs(layer)]
FIGURE = {
    fig: {fmt: figure_file(RESULTS, fig, fmt) for fmt in ("png", "pdf")}
    for fig in FIGURES
}


report: "../report/workflow.rst"


rule measure_fv:
    input:
        fv=lambda w: block_fv_chunk_dirs(w.block),
        activations=activations_h5(RESULTS),
    output:
        csv=raw_table_csv(RESULTS, "{block}", "fv"),
        json=raw_table_csv(RESULTS, "{block}", "fv").replace(".csv", ".json"),
    log:
        f"{RESULTS}/logs/analysis/measure_fv_{{block}}.log",
    wildcard_constraints:
        block=BLOCK_PATTERN,
    conda:
        f"{ENVS}/torch.yaml"
    threads: ANALYSIS["threads"]
    resources:
        gpu=GPU_PER_JOB,
    params:
        stimulus="fv",
        weights=WEIGHTS,
        o_relu=STUDY.o_relu,
        channels=lambda w: STUDY.block_channels(w.block),
    script:
        "../scripts/measure_block.py"


rule measure_imagenet:
    input:
        activations=activations_h5(RESULTS),
    output:
        csv=raw_table_csv(RESULTS, "{block}", "imagenet"),
        json=raw_table_csv(RESULTS, "{block}", "imagenet").replace(".csv", ".json"),
    log:
        f"{RESULTS}/logs/analysis/measure_imagenet_{{block}}.log",
    wildcard_constraints:
        block=BLOCK_PATTERN,
    conda:
        f"{ENVS}/torch.yaml"
    threads: ANALYSIS["threads"]
    resources:
        gpu=GPU_PER_JOB,
    params:
        stimulus="imagenet",
        weights=WEIGHTS,
        o_relu=STUDY.o_relu,
        dataset=STUDY.config["dataset"]["path"],
        channels=lambda w: STUDY.block_channels(w.block),
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
    conda:
        f"{ENVS}/torch.yaml"
    params:
        analysis=ANALYSIS_SETTINGS,
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
    conda:
        f"{ENVS}/torch.yaml"
    params:
        blocks=STUDY.study_blocks,
        fig34_blocks=FIG34_BLOCKS,
    script:
        "../scripts/analysis_summary.py"


rule channel_fvs:
    # Channel-objective FVs (whole-map mean) of the units Fig 1 / Fig 6 show; the author never made them.
    input:
        fv=FV_TABLES,
    output:
        directory(f"{RESULTS}/fv_channel/{{fig}}"),
    log:
        f"{RESULTS}/logs/fv_channel/{{fig}}.log",
    wildcard_constraints:
        fig="fig1|fig6",
    conda:
        f"{ENVS}/torch.yaml"
    threads: STUDY.config["fv"]["threads"]
    resources:
        gpu=GPU_PER_JOB,
    params:
        blocks=STUDY.study_blocks,
        figure_channels=lambda w: ANALYSIS["figure_channels"] if w.fig == "fig1" else {},
        settings={layer: STUDY.fv_settings(layer).as_params() for layer in STUDY.layers},
    script:
        "../scripts/channel_fvs.py"


rule fig1_channel_grids:
    input:
        fv=FV_TABLES,
        fv_images=ALL_FV_DIRS,
        exemplars=rules.exemplar_grids.output[0],
        channel_fvs=f"{RESULTS}/fv_channel/fig1",
    output:
        png=report(
            FIGURE["fig1"]["png"],
            caption="../report/fig1.rst",
            category="Figures",
        ),
        pdf=FIGURE["fig1"]["pdf"],
    log:
        f"{RESULTS}/logs/figures/fig1.log",
    conda:
        f"{ENVS}/torch.yaml"
    params:
        figure="fig1",
        blocks=STUDY.study_blocks,
        figure_channels=ANALYSIS["figure_channels"],
    script:
        "../scripts/figure.py"


rule fig2_mix_histograms:
    input:
        fv=FV_TABLES,
    output:
        png=report(
            FIGURE["fig2"]["png"],
            caption="../report/fig2.rst",
            category="Figures",
        ),
        pdf=FIGURE["fig2"]["pdf"],
    log:
        f"{RESULTS}/logs/figures/fig2.log",
    conda:
        f"{ENVS}/torch.yaml"
    params:
        figure="fig2",
        blocks=STUDY.study_blocks,
        figure_channels={},
    script:
        "../scripts/figure.py"


rule fig3_weights_vs_mix:
    input:
        fv=FIG34_FV_TABLES,
    output:
        png=report(
            FIGURE["fig3"]["png"],
            caption="../report/fig3.rst",
            category="Figures",
        ),
        pdf=FIGURE["fig3"]["pdf"],
    log:
        f"{RESULTS}/logs/figures/fig3.log",
    conda:
        f"{ENVS}/torch.yaml"
    params:
        figure="fig3",
        blocks=FIG34_BLOCKS,
        figure_channels={},
    script:
        "../scripts/figure.py"


rule fig4_inhibition:
    input:
        fv=FIG34_FV_TABLES,
    output:
        png=report(
            FIGURE["fig4"]["png"],
            caption="../report/fig4.rst",
            category="Figures",
        ),
        pdf=FIGURE["fig4"]["pdf"],
    log:
        f"{RESULTS}/logs/figures/fig4.log",
    conda:
        f"{ENVS}/torch.yaml"
    params:
        figure="fig4",
        blocks=FIG34_BLOCKS,
        figure_channels={},
    script:
        "../scripts/figure.py"


rule fig5_scale_invariance:
    input:
        fv=FV_TABLES,
    output:
        png=report(
            FIGURE["fig5"]["png"],
            caption="../report/fig5.rst",
            category="Figures",
        ),
        pdf=FIGURE["fig5"]["pdf"],
    log:
        f"{RESULTS}/logs/figures/fig5.log",
    conda:
        f"{ENVS}/torch.yaml"
    params:
        figure="fig5",
        blocks=STUDY.study_blocks,
        figure_channels={},
    script:
        "../scripts/figure.py"


rule fig6_top_scale_metric:
    input:
        fv=FV_TABLES,
        fv_images=ALL_FV_DIRS,
        exemplars=rules.exemplar_grids.output[0],
        channel_fvs=f"{RESULTS}/fv_channel/fig6",
    output:
        png=report(
            FIGURE["fig6"]["png"],
            caption="../report/fig6.rst",
            category="Figures",
        ),
        pdf=FIGURE["fig6"]["pdf"],
    log:
        f"{RESULTS}/logs/figures/fig6.log",
    conda:
        f"{ENVS}/torch.yaml"
    params:
        figure="fig6",
        blocks=STUDY.study_blocks,
        figure_channels={},
    script:
        "../scripts/figure.py"


rule fig7_both_criteria:
    input:
        fv=FV_TABLES,
        imagenet=IMAGENET_TABLES,
        fv_images=ALL_FV_DIRS,
        exemplars=rules.exemplar_grids.output[0],
    output:
        png=report(
            FIGURE["fig7"]["png"],
            caption="../report/fig7.rst",
            category="Figures",
        ),
        pdf=FIGURE["fig7"]["pdf"],
    log:
        f"{RESULTS}/logs/figures/fig7.log",
    conda:
        f"{ENVS}/torch.yaml"
    params:
        figure="fig7",
        blocks=STUDY.study_blocks,
        figure_channels={},
    script:
        "../scripts/figure.py"


rule fig8_closest_mixes:
    input:
        fv=FV_TABLES,
        fv_images=ALL_FV_DIRS,
        exemplars=rules.exemplar_grids.output[0],
    output:
        png=report(
            FIGURE["fig8"]["png"],
            caption="../report/fig8.rst",
            category="Figures",
        ),
        pdf=FIGURE["fig8"]["pdf"],
    log:
        f"{RESULTS}/logs/figures/fig8.log",
    conda:
        f"{ENVS}/torch.yaml"
    params:
        figure="fig8",
        blocks=STUDY.study_blocks,
        figure_channels={},
    script:
        "../scripts/figure.py"


# The reproduction scorecard: every claim of resstream/paper_claims.yaml against the tables.
rule paper_check:
    input:
        fv=FV_TABLES,
        imagenet=IMAGENET_TABLES,
        claims=CLAIMS_PATH,
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
    conda:
        f"{ENVS}/torch.yaml"
    params:
        blocks=STUDY.study_blocks,
    script:
        "../scripts/paper_check.py"


FINAL_OUTPUTS += rules.analysis_summary.output
FINAL_OUTPUTS += list(rules.paper_check.output)
FINAL_OUTPUTS += [
    figure_file(RESULTS, fig, fmt) for fig in FIGURES for fmt in ("png", "pdf")
]
