"""The documentation's generated parts: the configuration reference from the config schema and the
list of one-line errors from the code, so neither can drift from what they describe.

``mkdocs build`` runs :func:`on_page_markdown` (mkdocs.yml ``hooks:``), which replaces the markers
``<!-- generated: configuration -->``, ``<!-- generated: errors -->`` and ``<!-- generated: cli -->``
in the pages; the tests (tests/test_docs.py) call the same functions.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "resstream" / "schemas" / "config.schema.yaml"
NOTES = Path(__file__).with_name("error_notes.yaml")
MARKER = "<!-- generated: {} -->"


# --- the configuration reference ------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigKey:
    key: str  # dotted: "fv.steps"
    schema: dict

    @property
    def section(self) -> str:
        return self.key.split(".")[0] if "." in self.key else ""


def schema_keys(schema: dict | None = None) -> list[ConfigKey]:
    """Every settable key of the schema, in the schema's order (objects with properties are sections)."""
    schema = schema or yaml.safe_load(SCHEMA.read_text())
    found: list[ConfigKey] = []

    def walk(props: dict, prefix: str) -> None:
        for name, sub in props.items():
            if sub.get("type") == "object" and "properties" in sub:
                walk(sub["properties"], f"{prefix}{name}.")
            else:
                found.append(ConfigKey(prefix + name, sub))

    walk(schema["properties"], "")
    return found


def _resolve(sub: dict, defs: dict) -> dict:
    ref = sub.get("$ref", "")
    return {**defs.get(ref.rsplit("/", 1)[-1], {}), **sub} if ref else sub


def _type(sub: dict, defs: dict) -> str:
    sub = _resolve(sub, defs)
    if "oneOf" in sub or "anyOf" in sub:
        return " or ".join(_type(alt, defs) for alt in sub.get("oneOf") or sub["anyOf"])
    kind = sub.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    if "enum" in sub:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" if not isinstance(v, str) else f"`{v}`" for v in sub["enum"])
    if kinds == ["array"] and "items" in sub:
        return f"list of ({_type(sub['items'], defs)})"
    return " or ".join("null" if k == "null" else k for k in kinds)


def _range(sub: dict, defs: dict) -> str:
    sub = _resolve(sub, defs)
    parts = []
    for word, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if word in sub:
            parts.append(f"{sign} {sub[word]}")
    if "minItems" in sub:
        parts.append(f"at least {sub['minItems']} item(s)")
    if "pattern" in sub:
        parts.append(f"matches `{sub['pattern']}`")
    for alt in sub.get("oneOf") or sub.get("anyOf") or []:
        inner = _range(alt, defs)
        if inner:
            parts.append(inner)
    return "; ".join(parts)


def _example(key: ConfigKey) -> str:
    """The key set to its default, as it would be written in a config file."""
    value = key.schema.get("default")
    leaf = key.key.split(".")[-1]
    text = yaml.safe_dump({leaf: value}, default_flow_style=True, width=10_000).strip()[1:-1]
    return f"`{key.section + ': {' + text + '}' if key.section else text}`"


def _cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def config_reference(schema: dict | None = None) -> str:
    """One table per section: key, type, default, range, description and an example."""
    schema = schema or yaml.safe_load(SCHEMA.read_text())
    defs = schema.get("$defs", {})
    out, section = [], None
    for key in schema_keys(schema):
        if key.section != section:
            section = key.section
            out += [
                "",
                f"### `{section}`" if section else "### Top level",
                "",
                "| key | type | default | range | what it is | example |",
                "|---|---|---|---|---|---|",
            ]
        default = json.dumps(key.schema.get("default"))
        out.append(
            f"| `{key.key}` | {_cell(_type(key.schema, defs))} | `{default}` | {_cell(_range(key.schema, defs)) or '—'} "
            f"| {_cell(key.schema.get('description', ''))} | {_cell(_example(key))} |"
        )
    return "\n".join(out).strip() + "\n"


# --- the one-line errors --------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorMessage:
    template: str  # the message with each computed part written as {…expression…}
    where: str  # module path and line

    @property
    def problem(self) -> str:
        return self.template.split("Fix:", 1)[0].strip().rstrip(".;")

    @property
    def fix(self) -> str:
        return self.template.split("Fix:", 1)[1].strip() if "Fix:" in self.template else ""


def _template(node: ast.AST) -> str | None:
    """A string expression as text, computed parts as ``{expression}``; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) else "{" + ast.unparse(v.value) + "}" for v in node.values
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left), _template(node.right)
        return None if left is None or right is None else left + right
    return None


SAYS_WHAT_IT_DOES = ("note:", "stopping:")  # lines printed while a run goes on or winds down, not errors


def error_messages(root: Path = REPO / "resstream") -> list[ErrorMessage]:
    """Every message template of the package a user can meet as a ``resstream:`` line: each string
    that tells a fix (``... Fix: ...``), each message an error is raised with (``raise
    SomeError("...")``) and each line that says what a run does (``note: ...``, ``stopping: ...``);
    docstrings and parts of longer strings are left out."""
    trees = {path: ast.parse(path.read_text(), filename=str(path)) for path in sorted(root.rglob("*.py"))}
    user_errors = _user_error_classes(trees.values())
    found = []
    for path, tree in trees.items():
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        raised = {
            id(call.args[0])
            for node in ast.walk(tree)
            if isinstance(node, ast.Raise)
            and isinstance(call := node.exc, ast.Call)
            and call.args
            and _name(call.func) in user_errors
        }
        for node in ast.walk(tree):
            if isinstance(parents.get(node), (ast.BinOp, ast.JoinedStr, ast.Expr)):
                continue  # a part of a longer string (that one is the message), or a docstring
            text = _template(node)
            if text and ("Fix:" in text or id(node) in raised or text.startswith(SAYS_WHAT_IT_DOES)):
                found.append(ErrorMessage(" ".join(text.split()), f"{path.relative_to(REPO)}:{node.lineno}"))
    return found


def _name(node: ast.AST) -> str:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def _user_error_classes(trees) -> set[str]:
    """UserError and every class derived from it (the errors that end a job with one line)."""
    bases = {
        node.name: {_name(b) for b in node.bases}
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    found = {"UserError"}
    while grown := {name for name, of in bases.items() if of & found} - found:
        found |= grown
    return found


def error_notes() -> dict[str, str]:
    """Hand-written explanations, each keyed by a piece of text its message contains."""
    return yaml.safe_load(NOTES.read_text()) or {}


def note_for(message: ErrorMessage, notes: dict[str, str]) -> str:
    return next((note for key, note in notes.items() if key in message.template), "")


def errors_reference() -> str:
    """The messages grouped by the package part that raises them, each with its fix and its note."""
    notes = error_notes()
    out, part = [], None
    for message in sorted(error_messages(), key=lambda m: m.where.split(":")[0]):
        here = message.where.split("/")[1].removesuffix(".py")
        if here != part:
            part = here
            out += [f"### `{part}`", ""]
        note = note_for(message, notes)
        fix = (
            f"Fix: {_cell(message.fix)}"
            if message.fix
            else "(says what the run does)"
            if message.template.startswith(SAYS_WHAT_IT_DOES)
            else "(the line itself names what to change)"
        )
        out += [
            f"- **`resstream: {_cell(_readable(message.problem))}`**  ",
            f"  {_readable(fix)}  ",
            f"  <small>`{message.where}`</small>" + (f"  \n  {_cell(note)}" if note else ""),
            "",
        ]
    return "\n".join(out)


def _readable(text: str) -> str:
    """Computed parts that are plain names stay ``{name}``; longer expressions become ``{…}``."""
    return PLACEHOLDER.sub(lambda m: m.group(0) if re.fullmatch(r"[\w.]+", m.group(1)) else "{…}", text)


PLACEHOLDER = re.compile(r"\{((?:[^{}]|\{[^{}]*\})*)\}")  # one level of nested braces (dict displays)


# --- the command line -----------------------------------------------------------------------------


def cli_reference() -> str:
    """``resstream --help`` and each subcommand's, as argparse prints them."""
    from resstream.cli import build_parser

    parser = build_parser()
    out = ["```text", "$ resstream --help", parser.format_help().rstrip(), "```"]
    for name, sub in _subcommands(parser).items():
        out += ["", f"### `resstream {name}`", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(out) + "\n"


def _subcommands(parser) -> dict:
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


GENERATORS = {"configuration": config_reference, "errors": errors_reference, "cli": cli_reference}


def on_page_markdown(markdown: str, page, config, files) -> str:
    for name, generate in GENERATORS.items():
        if MARKER.format(name) in markdown:
            markdown = markdown.replace(MARKER.format(name), generate())
    return markdown
