"""The config files named on a ``snakemake`` command line, checked before Snakemake reads them.

Snakemake loads ``--configfile`` files itself, before the Snakefile runs, and answers a misspelt
name with a traceback ending in ``FileNotFoundError`` and broken YAML with a message that names
neither the file nor the line.  The workflow's profile (``profiles/default/config.yaml``, which
Snakemake reads first, as a YTE template) calls :func:`check_configfiles_or_exit`, so that either
case ends with one line naming the file and the fix.  Kept light (``yaml`` and the standard library
only): it runs at the start of every ``snakemake`` command in this folder.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

from resstream.base.errors import ConfigError

CONFIGFILE_OPTIONS = ("--configfile", "--configfiles")
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def configfiles_named(argv: list[str]) -> list[str]:
    """The paths given to ``--configfile``/``--configfiles`` (each takes one or more values, up to
    the next option), also in the ``--configfile=PATH`` form."""
    paths: list[str] = []
    taking = False
    for arg in argv:
        option, equals, value = arg.partition("=")
        if option in CONFIGFILE_OPTIONS:
            taking = not equals
            if equals:
                paths.append(value)
        elif arg.startswith("-"):
            taking = False
        elif taking:
            paths.append(arg)
    return paths


def yaml_error_place(exc) -> str:
    """``line L, column C: problem (context at line L', column C')`` of a YAML parse error."""
    mark, context_mark = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
    text = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        text = f"line {mark.line + 1}, column {mark.column + 1}: {text}"
    if getattr(exc, "context", None) and context_mark is not None:
        text += f" ({exc.context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
    return text


def _nearby_config_files(path: Path) -> list[str]:
    folder = path.parent
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.suffix in CONFIG_SUFFIXES and p.is_file())


def closest_config_hint(path: str) -> str:
    """The closest config file beside a missing one, else the config files there."""
    nearby = _nearby_config_files(Path(path))
    close = difflib.get_close_matches(Path(path).name, nearby, n=1, cutoff=0.6)
    where = str(Path(path).parent) if str(Path(path).parent) != "." else "this folder"
    if close:
        return f"did you mean {Path(path).with_name(close[0])}?"
    if nearby:
        return f"config files in {where}: {', '.join(nearby)}"
    return f"{where} has no .yaml, .yml or .json file; check the path"


def check_configfile(path: str) -> None:
    """Raise ConfigError, one line, if a ``--configfile`` file is missing, not UTF-8, not YAML or
    not a mapping of keys: what Snakemake would otherwise answer with a traceback or no place."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            content = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} (given to --configfile) does not exist; {closest_config_hint(path)}"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} (given to --configfile) is a folder; give a .yaml file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"config file {path} is not valid YAML: {yaml_error_place(exc)}; fix the file there"
        ) from None
    if content is not None and not isinstance(content, dict):
        raise ConfigError(
            f"config file {path} holds a {type(content).__name__}, not keys and values; write it as `key: value` lines"
        )


def check_configfiles_or_exit(argv: list[str] | None = None) -> None:
    """Every ``--configfile`` of this command line exists and parses; else one line and exit 1."""
    for path in configfiles_named(sys.argv[1:] if argv is None else argv):
        try:
            check_configfile(path)
        except ConfigError as exc:
            print(f"resstream: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
