"""Entry points a stage package names without importing them.

A stage's ``__init__`` lists its public functions; importing the package must stay cheap (no torch
for the jobs that only read files) and must not pull every module of the stage into a job's code
fingerprint (:mod:`resstream.base.code_fingerprint` follows import statements).  So the names
resolve on first use (PEP 562).
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, **names_by_module: str):
    """``(__all__, __getattr__, __dir__)`` for ``package``; each keyword names a submodule (relative
    to ``package``) and its value the public names it defines, separated by spaces."""
    entry_points = {name: module for module, names in names_by_module.items() for name in names.split()}

    def __getattr__(name: str):
        if name not in entry_points:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{entry_points[name]}"), name)

    def __dir__():
        return sorted(entry_points)

    return sorted(entry_points), __getattr__, __dir__
