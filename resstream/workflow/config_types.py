"""Command-line config values typed by the schema.

Snakemake reads ``--config 'analysis={mix_factor: 2}'`` with the nested value as the string ``'2'``
(and ``fv={overrides: {"2.1": {steps: 3}}}`` with ``'3'``), which the schema then refuses.  Before
validation, every string leaf of a ``--config`` value whose schema does not accept a string there
becomes the number, integer, boolean or null the schema asks for; a string the schema accepts
(a path, an enum value) stays a string, and a string that is none of the allowed types is left for
the validation to name.  (A top-level ``key=value`` is parsed as YAML: a number where the schema
wants a string, ``results=2``, becomes the string.)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

NULLS = ("null", "~", "None", "none", "")
BOOLEANS = {"true": True, "false": False, "yes": True, "no": False, "True": True, "False": False}


def coerce_command_line(config: dict, command_line: Mapping | None, schema: dict | None = None) -> None:
    """Put the schema-typed form of every ``--config`` value (``command_line``) into ``config``."""
    if not command_line:
        return
    if schema is None:
        from resstream.base.schema import load_schema

        schema = load_schema()
    typed = coerce(_plain(command_line), schema, schema)
    _merge(config, typed)


def _plain(value):
    """Snakemake's immutable mappings as plain dicts, recursively."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _merge(config: dict, typed: dict) -> None:
    for key, value in typed.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            _merge(config[key], value)
        else:
            config[key] = copy.deepcopy(value)


def _resolve(schema: dict, root: dict) -> dict:
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].split("/")[-1]]
    return schema


def coerce(value, schema: dict, root: dict):
    """``value`` with its string leaves typed by ``schema`` (see the module docstring)."""
    schema = _resolve(schema, root)
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives:
        return _coerce_alternatives(value, [_resolve(a, root) for a in alternatives], root)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {k: coerce(v, props.get(k, extra if isinstance(extra, dict) else {}), root) for k, v in value.items()}
    if isinstance(value, list):
        items = schema.get("items")
        return [coerce(v, items, root) for v in value] if isinstance(items, dict) else value
    if isinstance(value, str):
        return coerce_string(value, schema)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and _types(schema) == ["string"]:
        return str(value)  # a top-level `results=2` is read as a number; the schema wants a folder name
    return value


def _coerce_alternatives(value, alternatives: list[dict], root: dict):
    if isinstance(value, str):
        if any(_accepts_string(value, a) for a in alternatives):
            return value
        for alt in alternatives:
            typed = coerce_string(value, alt)
            if not isinstance(typed, str):
                return typed
        return value
    kind = "object" if isinstance(value, dict) else "array" if isinstance(value, list) else None
    for alt in alternatives:
        if kind is not None and kind in _types(alt):
            return coerce(value, alt, root)
    return value


def _types(schema: dict) -> list[str]:
    kind = schema.get("type")
    if kind is None:
        return []
    return [kind] if isinstance(kind, str) else list(kind)


def _accepts_string(value: str, schema: dict) -> bool:
    types = _types(schema)
    if types and "string" not in types:
        return False
    return "enum" not in schema or value in schema["enum"]


def coerce_string(value: str, schema: dict):
    """The value of the first type of ``schema`` (null, boolean, integer, number) that ``value``
    spells, unless the schema accepts the string itself."""
    types = _types(schema)
    if not types or _accepts_string(value, schema):
        return value
    text = value.strip()
    if "null" in types and text in NULLS:
        return None
    if "boolean" in types and text in BOOLEANS:
        return BOOLEANS[text]
    if "integer" in types or "number" in types:
        try:
            return int(text)
        except ValueError:
            pass
    if "number" in types:
        try:
            return float(text)
        except ValueError:
            pass
    return value
