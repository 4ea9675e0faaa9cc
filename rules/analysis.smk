# Stage 3: measurements, metric tables, summary and Figs 1-8 (docs/method.md).
# Per block: measure (heavy: forwards of FVs / top-9 images) -> metric table (cheap; holds the
# analysis settings as params, so changing mix_factor or scale_rule never re-measures).
# Figures and summary.json read only the tables (and the pictures they show); the eight figure
# rules are made from one registry (resstream.analysis.summary.FIGURE_READS).  The jobs' specs come
# from resstream/analysis/jobs.py.  `snakemake --report report.html` embeds the PNGs.
import re

from resstream.analysis.jobs import (
    STIMULI,
    figure_spec,
    measure_spec,
    metric_table_spec,
    paper_check_spec,
    summary_spec,
)
from resstream.analysis.summary import FIGURES, figure_file, raw_table_csv, summary_json
from resstream.analysis.scorecard import scorecard_outputs
from resstream.base.tables import sidecar_json

ANALYSIS = PLAN.config["analysis"]
BLOCK_PATTERN = "|".join(re.escape(b) for b in PLAN.study_blocks)
SCORECARD = scorecard_outputs(RESULTS)


report: "../report/workflow.rst"


# The two measurements of a block (on its FVs, docs/method.md#measurements; on the dataset's top
# images, docs/method.md#imagenet-variant-a3): one rule each, the same job but for what it reads.
for stimulus in STIMULI:
    MEASURE_SPEC = measure_spec(PLAN, stimulus)

    rule:
        name:
            f"measure_{stimulus}"
        input:
            **MEASURE_SPEC.input,
        output:
            csv=raw_table_csv(RESULTS, "{block}", stimulus),
            json=sidecar_json(raw_table_csv(RESULTS, "{block}", stimulus)),
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
            **MEASURE_SPEC.resources,
            gpu=gpu_per_job,
        params:
            **MEASURE_SPEC.params,
            gpu_slots=GPU_SLOTS,
            code=code("measure_block.py"),
        script:
            "../scripts/measure_block.py"


TABLE_SPEC = metric_table_spec(PLAN)


rule metric_table:
    input:
        **TABLE_SPEC.input,
    output:
        csv=f"{RESULTS}/analysis/{{block}}/{{stimulus}}_table.csv",
        json=f"{RESULTS}/analysis/{{block}}/{{stimulus}}_table.json",
    log:
        f"{RESULTS}/logs/analysis/metric_table_{{block}}_{{stimulus}}.log",
    wildcard_constraints:
        block=BLOCK_PATTERN,
        stimulus="|".join(STIMULI),
    localrule: True
    conda:
        f"{ENVS}/torch.yaml"
    params:
        **TABLE_SPEC.params,
        code=code("metric_table.py"),
    script:
        "../scripts/metric_table.py"


SUMMARY_SPEC = summary_spec(PLAN)


rule analysis_summary:
    input:
        **SUMMARY_SPEC.input,
    output:
        json=summary_json(RESULTS),
    log:
        f"{RESULTS}/logs/analysis/summary.log",
    localrule: True
    conda:
        f"{ENVS}/torch.yaml"
    params:
        **SUMMARY_SPEC.params,
        code=code("analysis_summary.py"),
    script:
        "../scripts/analysis_summary.py"


for fig, fig_rule in FIGURES.items():
    FIGURE_SPEC = figure_spec(PLAN, fig)

    rule:
        name:
            fig_rule
        input:
            **FIGURE_SPEC.input,
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
            **FIGURE_SPEC.params,
            code=code("figure.py"),
        script:
            "../scripts/figure.py"


PAPER_CHECK_SPEC = paper_check_spec(PLAN)


# The reproduction scorecard: every claim of resstream/analysis/paper_claims.yaml against the tables;
# its CSV's JSON sidecar (what the atlas's index reads of it) is an output of its own.
rule paper_check:
    input:
        **PAPER_CHECK_SPEC.input,
    output:
        csv=SCORECARD["csv"],
        json=sidecar_json(SCORECARD["csv"]),
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
        **PAPER_CHECK_SPEC.params,
        code=code("paper_check.py"),
    script:
        "../scripts/paper_check.py"


FINAL_OUTPUTS += rules.analysis_summary.output
FINAL_OUTPUTS += list(rules.paper_check.output)
FINAL_OUTPUTS += [
    figure_file(RESULTS, fig, fmt) for fig in FIGURES for fmt in ("png", "pdf")
]
