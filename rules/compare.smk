# Cross-model comparison (resstream/compare/runs.py): the summary.json and FV metric tables of several
# finished runs (compare.runs: {name: results folder}) side by side by relative depth, in a folder of
# compare.results named after the runs (resnet18+resnet50), so one comparison never replaces another.
# Inactive unless compare.runs lists a run; a listed folder that is this run's RESULTS is built first.
# The job's spec (every run's summary and tables as inputs) comes from resstream/compare/jobs.py.
import os

from resstream.compare.jobs import compare_spec
from resstream.compare.runs import compare_outputs, comparison_folder

COMPARE = PLAN.config["compare"]

if COMPARE["runs"]:
    COMPARE_DIR = comparison_folder(COMPARE["results"], COMPARE["runs"])
    COMPARE_OUT = compare_outputs(COMPARE_DIR)
    COMPARE_SPEC = compare_spec(PLAN)

    rule compare_models:
        input:
            **COMPARE_SPEC.input,
        output:
            png=report(
                COMPARE_OUT["png"],
                caption="../report/compare.rst",
                category="Comparison",
            ),
            pdf=COMPARE_OUT["pdf"],
            blocks=COMPARE_OUT["blocks"],
            histograms=COMPARE_OUT["histograms"],
            runs=COMPARE_OUT["runs"],
            by_depth=COMPARE_OUT["by_depth"],
        log:
            f"{COMPARE['results']}/logs/{os.path.basename(COMPARE_DIR)}.log",
        localrule: True
        conda:
            f"{ENVS}/torch.yaml"
        params:
            **COMPARE_SPEC.params,
            code=code("compare.py"),
        script:
            "../scripts/compare.py"

    FINAL_OUTPUTS += list(COMPARE_OUT.values())
