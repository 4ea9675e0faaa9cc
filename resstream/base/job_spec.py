"""The spec of one rule's jobs: what they read (``input``), what changes their outputs (``params``:
a change reruns them) and how they run (``resources``: batch sizes, log frequency, runtime, memory;
a change reruns nothing).  Each value is a plain value or a function of the job's wildcards (a
resource's budget also of ``attempt``, as Snakemake calls it), built by the stage's ``jobs`` module
from the study plan.

The rule declares the spec as it is (``**SPEC.params``), and its script hands the Snakemake job to
the stage's entry point.  The API, the tests and the benchmarks hand the same entry point one job
made here (:meth:`JobSpec.job`), so every caller runs the job the workflow runs.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from types import SimpleNamespace


class Named(SimpleNamespace):
    """Named values, read as Snakemake's job reads them: ``.name`` or ``.get(name, default)``."""

    def get(self, name: str, default=None):
        return getattr(self, name, default)


@dataclass(frozen=True)
class JobSpec:
    input: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    resources: dict = field(default_factory=dict)

    def job(
        self, output: dict, input: dict | None = None, attempt: int = 1, threads: int = 1, **wildcards
    ) -> SimpleNamespace:
        """One job as its entry point reads it (as a Snakemake job's ``input``, ``output``,
        ``params``, ``resources``, ``wildcards`` and ``threads``): the values for ``wildcards``, its
        outputs at the paths ``output`` names; ``input`` replaces inputs a caller outside the
        workflow has elsewhere (or not at all: None)."""
        named = SimpleNamespace(**wildcards)
        parts = {
            part: {name: _value(value, named, attempt) for name, value in getattr(self, part).items()}
            for part in ("input", "params", "resources")
        }
        # an input path may name the job's wildcards ({block}), which Snakemake fills in
        parts["input"] = {name: _filled(value, wildcards) for name, value in parts["input"].items()}
        parts["input"].update(input or {})
        return SimpleNamespace(
            **{part: Named(**values) for part, values in parts.items()},
            output=Named(**output),
            wildcards=named,
            threads=threads,
        )


def _value(value, wildcards: SimpleNamespace, attempt: int):
    """``value``, or what it gives the job when it is a function (of the wildcards, and ``attempt``
    where it takes one)."""
    if not callable(value):
        return value
    if "attempt" in inspect.signature(value).parameters:
        return value(wildcards, attempt=attempt)
    return value(wildcards)


def _filled(paths, wildcards: dict):
    if isinstance(paths, str):
        return paths.format(**wildcards)
    return [_filled(path, wildcards) for path in paths] if isinstance(paths, list) else paths


def by_block(blocks: list[str], paths) -> dict[str, str]:
    """``{block: path}`` of a job's per-block inputs (listed in the order of its ``blocks``; none: {})."""
    return dict(zip(blocks, paths or []))
