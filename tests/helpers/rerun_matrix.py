"""The rerun matrix: for each change, the jobs a dry run replans, against the jobs the change
touches directly and everything that reads their outputs (the downstream closure in the DAG).

The table of docs/reruns.md ("What reruns") is rendered here from the expected sets, so the table,
the expectation and what Snakemake plans are one and the same (tests/workflow/test_rerun.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FIGURE_RULES = (
    "fig1_channel_grids",
    "fig2_mix_histograms",
    "fig3_weights_vs_mix",
    "fig4_inhibition",
    "fig5_scale_invariance",
    "fig6_top_scale_metric",
    "fig7_both_criteria",
    "fig8_closest_mixes",
)
# the order rules are listed in (the pipeline's)
RULE_ORDER = (
    "model_card",
    "fv_chunk",
    "fv_channel_chunk",
    "dataset_manifest",
    "activations",
    "exemplar_grids",
    "measure_fv",
    "measure_imagenet",
    "metric_table",
    "analysis_summary",
    *FIGURE_RULES,
    "paper_check",
    "atlas_block",
    "atlas_index",
)
TABLE_HEADER = "| change | jobs replanned |\n|---|---|\n"


@dataclass(frozen=True)
class Job:
    rule: str
    wildcards: tuple[tuple[str, str], ...] = ()

    def label(self) -> str:
        """The job in the docs' table: its wildcard values but the chunk (every chunk is c0000-0063 here)."""
        return " ".join(v for k, v in self.wildcards if k != "chunk")


@dataclass
class Dag:
    """Jobs with their inputs and outputs, from a forced dry run of the whole workflow."""

    inputs: dict[Job, set[str]] = field(default_factory=dict)
    outputs: dict[Job, set[str]] = field(default_factory=dict)

    def readers(self, job: Job) -> set[Job]:
        made = self.outputs[job]
        return {other for other, needs in self.inputs.items() if needs & made}

    def downstream(self, seeds: set[Job]) -> set[Job]:
        """``seeds`` and every job that reads, directly or not, what one of them writes."""
        todo, seen = list(seeds), set(seeds)
        while todo:
            for reader in self.readers(todo.pop()):
                if reader not in seen:
                    seen.add(reader)
                    todo.append(reader)
        return seen


def _wildcards(text: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(tuple(kv.split("=", 1)) for kv in text.split(", ")))


def parse_jobs(dry_run_output: str) -> tuple[list[Job], Dag]:
    """Every job a dry run lists (``rule``/``localrule`` blocks) with its inputs and outputs (its
    benchmark file included); the target rule ``all`` is left out."""
    jobs, dag = [], Dag()
    for block in re.split(r"\n\s*\n", dry_run_output):
        head = re.search(r"^\s*(?:local)?rule (\w+):\s*$", block, re.M)
        if not head or head.group(1) == "all":
            continue
        fields = {}
        for line in block.splitlines():
            key, _, value = line.strip().partition(": ")
            if key in ("input", "output", "benchmark", "wildcards"):
                fields[key] = value
        job = Job(head.group(1), _wildcards(fields["wildcards"]) if "wildcards" in fields else ())
        jobs.append(job)
        dag.inputs[job] = set(filter(None, fields.get("input", "").split(", ")))
        # a benchmark file is an output too: Snakemake waits for it when the job ends
        dag.outputs[job] = set(filter(None, fields.get("output", "").split(", ") + [fields.get("benchmark", "")]))
    return jobs, dag


def render(jobs: set[Job]) -> str:
    """The docs table's cell for a set of jobs: rules in pipeline order, each with its jobs' wildcard
    values; the eight figures as "Figs 1-8" when all of them rerun; "nothing" for none."""
    if not jobs:
        return "nothing"
    by_rule: dict[str, list[str]] = {}
    for job in jobs:
        by_rule.setdefault(job.rule, []).append(job.label())
    parts = []
    for rule in RULE_ORDER:
        if rule in FIGURE_RULES and all(f in by_rule for f in FIGURE_RULES):
            if rule == FIGURE_RULES[0]:
                parts.append("Figs 1–8")
            continue
        if rule in by_rule:
            labels = sorted(label for label in by_rule[rule] if label)
            parts.append(f"{rule} ({', '.join(labels)})" if labels else rule)
    unknown = sorted(set(by_rule) - set(RULE_ORDER))
    assert not unknown, f"rules the matrix does not know: {unknown}"
    return ", ".join(parts)


def table(rows: list[tuple[str, set[Job]]]) -> str:
    return TABLE_HEADER + "".join(f"| {change} | {render(jobs)} |\n" for change, jobs in rows)
