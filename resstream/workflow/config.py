"""Configuration: one validation pass against the schema (which holds every default), with
messages that name the key.  The plan derived from a validated config: :mod:`resstream.workflow.plan`.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

from resstream.errors import ConfigError
from resstream.workflow.schema import load_schema

def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def _fill_defaults(schema: dict, data, root: dict):
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].split("/")[-1]]
    if not isinstance(data, dict) or schema.get("type") != "object":
        return data
    for key, sub in schema.get("properties", {}).items():
        if key not in data and "default" in sub:
            data[key] = copy.deepcopy(sub["default"])
        if key in data:
            data[key] = _fill_defaults(sub, data[key], root)
    return data


def validate_config(config: dict) -> dict:
    """Validate against the schema and fill defaults; raise :class:`ConfigError` naming the key."""
    schema = load_schema()
    config = copy.deepcopy(config or {})
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors:
            # oneOf failures hide the useful reason in their context
            if e.context:  # a oneOf: report the alternative that got deepest into the value
                e = max(e.context, key=lambda c: len(c.absolute_path))
            lines.append(f"{_key_path(e)}: {e.message}")
        raise ConfigError("invalid config: " + " | ".join(lines))
    return _fill_defaults(schema, config, schema)


def load_config(path: str | Path) -> dict:
    with open(path) as f:
        return validate_config(yaml.safe_load(f) or {})
