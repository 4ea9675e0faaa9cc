"""The configuration schema, shipped as package data: every key and its default.

Kept free of heavy imports (no torch), so the command line can show the workflow's defaults in
its help without loading the network code.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

# Package data (in the wheel too), so an installed resstream validates configs as the workflow does.
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"


@functools.lru_cache(maxsize=1)
def load_schema() -> dict:
    with open(SCHEMA_PATH) as f:
        return yaml.safe_load(f)


def section_properties(section: str) -> dict:
    """The schema of each key of one config section (``type``, ``default``, ``enum``, ...)."""
    return load_schema()["properties"][section]["properties"]


def section_defaults(section: str) -> dict:
    """``{key: default}`` of one config section, e.g. ``section_defaults("fv")["steps"]``."""
    return {key: spec.get("default") for key, spec in section_properties(section).items()}


def default(key: str):
    """The schema's default of one dotted config key, e.g. ``default("analysis.mix_factor")``: for
    library functions called outside the workflow and for outputs whose recorded settings predate a
    key (the schema is the one place a default is written)."""
    spec = load_schema()
    for part in key.split("."):
        try:
            spec = spec["properties"][part]
        except KeyError:
            raise KeyError(f"{key} is not a config key of {SCHEMA_PATH.name}") from None
    if "default" not in spec:
        raise KeyError(f"{key} has no default in {SCHEMA_PATH.name}")
    return spec["default"]
