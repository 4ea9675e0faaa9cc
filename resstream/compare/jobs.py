"""The spec of the ``compare_models`` job (active when ``compare.runs`` lists a run), built from the
study plan (:class:`resstream.workflow.plan.StudyPlan`, passed in): every listed run's summary and FV
metric tables (with their JSON sidecars) are its inputs, so an edited table of any run reruns it.
The job runs :func:`resstream.compare.runs.compare_job`."""

from __future__ import annotations

import json
import os

from resstream.analysis.summary import metric_table_csv, summary_json
from resstream.base.job_spec import JobSpec
from resstream.base.tables import sidecar_json


def run_blocks(plan, results: str) -> list[str]:
    """The studied blocks of the run in ``results``: this run's own from the plan (it is built
    first), another's from its summary (none where that cannot be read: the pre-flight check says why)."""
    if os.path.realpath(results) == os.path.realpath(plan.config["results"]):
        return list(plan.study_blocks)
    try:
        with open(summary_json(results)) as f:
            return list(json.load(f).get("blocks") or [])
    except (OSError, ValueError, AttributeError):
        return []


def compare_spec(plan) -> JobSpec:
    section = plan.config["compare"]
    runs = section["runs"]
    tables = [metric_table_csv(results, b, "fv") for results in runs.values() for b in run_blocks(plan, results)]
    return JobSpec(
        input={
            "summaries": [summary_json(results) for results in runs.values()],
            "tables": tables,
            "tables_meta": [sidecar_json(t) for t in tables],
        },
        params={"runs": runs, "depth_bins": section["depth_bins"]},
    )
