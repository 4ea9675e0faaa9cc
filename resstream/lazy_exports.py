"""Entry points a stage package names without importing them.

A stage's ``__init__`` lists its public functions; importing the package must stay cheap (no torch
for the jobs that only read files) and must not pull every module of the stage into a job's code
fingerprint (:mod:`resstream.workflow.code_fingerprint` follows import statements).  So the names
resolve on first use (PEP 562).
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, entry_points: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package`` whose ``entry_points`` map a public name to the
    submodule (relative to ``package``) that defines it."""

    def __getattr__(name: str):
        if name not in entry_points:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{entry_points[name]}"), name)

    def __dir__():
        return sorted(entry_points)

    return __getattr__, __dir__
