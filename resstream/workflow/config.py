"""Configuration: one validation pass against the schema (which holds every default), with
messages that name the key.  The plan derived from a validated config: :mod:`resstream.workflow.plan`.
"""

from __future__ import annotations

import copy
import difflib
import math
import numbers
from pathlib import Path

import jsonschema
import yaml

from resstream.base.errors import ConfigError
from resstream.base.schema import load_schema

UNKNOWN_KEY = "unknown key"
RANGE_KEYWORDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")


def _finite_number(checker, instance) -> bool:
    """A JSON number that is finite: YAML's .inf and .nan (and --config's 'inf', 'nan') are not
    numbers a setting can take, and NaN would pass every range test (all its comparisons are false)."""
    return isinstance(instance, numbers.Real) and not isinstance(instance, bool) and math.isfinite(instance)


# The schema's validator with "number" (and so "integer") meaning a finite number.
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("number", _finite_number),
)


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def _types(spec: dict) -> list[str]:
    kind = spec.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def _range_text(key: str, spec: dict) -> str:
    """What a numeric key accepts, e.g. ``a finite number with 0 < lr <= 10`` (``key``: its name)."""
    low = f"{spec['minimum']} <= " if "minimum" in spec else f"{spec['exclusiveMinimum']} < "
    high = f" <= {spec['maximum']}" if "maximum" in spec else f" < {spec['exclusiveMaximum']}"
    kind = "an integer" if "integer" in _types(spec) else "a finite number"
    return f"{kind} with {low}{key}{high}" + (" (or null)" if "null" in _types(spec) else "")


def _number_error(error: jsonschema.ValidationError) -> bool:
    """A number out of a numeric key's range, or a non-finite value where one is wanted."""
    numeric = {"integer", "number"} & set(_types(error.schema))
    is_number = isinstance(error.instance, numbers.Real) and not isinstance(error.instance, bool)
    return bool(numeric) and is_number and error.validator in ("type", *RANGE_KEYWORDS)


def _what_is_wrong(error: jsonschema.ValidationError) -> str:
    if not math.isfinite(error.instance):
        return "is not a finite number"
    return "is not an integer" if error.validator == "type" else "is out of range"


def _unknown_keys(error: jsonschema.ValidationError) -> list[str]:
    """One line per key the schema does not know, with the closest known key when one is close."""
    where = ".".join(str(p) for p in error.absolute_path)
    known = list(error.schema.get("properties", {}))
    lines = []
    for key in sorted(set(error.instance) - set(known), key=str):
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        section = f"of `{where}`" if where else "at the top level"
        fix = f"did you mean `{close[0]}`?" if close else f"the keys {section} are {', '.join(known)}"
        lines.append(f"{UNKNOWN_KEY} `{where + '.' if where else ''}{key}`; {fix}")
    return lines


def _error_lines(error: jsonschema.ValidationError) -> list[str]:
    if error.context:  # a oneOf: report the alternative that got deepest into the value (a number's range first)
        error = max(error.context, key=lambda c: (len(c.absolute_path), _number_error(c)))
    key = _key_path(error)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict) and "properties" in error.schema:
        return _unknown_keys(error)
    if _number_error(error):
        last = error.absolute_path[-1] if error.absolute_path else key
        name = last if isinstance(last, str) else "value"  # a list's item: its index names nothing
        return [f"{key}: {error.instance} {_what_is_wrong(error)}; {key} takes {_range_text(name, error.schema)}"]
    return [f"{key}: {error.message}"]


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
    errors = sorted(_Validator(schema).iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = [line for e in errors for line in _error_lines(e)]
        # an unknown key's line stands alone: "resstream: unknown key `a.b`; did you mean `c`?"
        alone = all(line.startswith(UNKNOWN_KEY) for line in lines)
        raise ConfigError(("" if alone else "invalid config: ") + " | ".join(lines))
    return _fill_defaults(schema, config, schema)


def load_config(path: str | Path) -> dict:
    with open(path) as f:
        return validate_config(yaml.safe_load(f) or {})
