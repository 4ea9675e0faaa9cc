"""The one config builder of the tests: tiny settings (random weights, CPU, no download, 2 FV steps,
small batches, one thread) that each test changes only where it needs to; the study (blocks and
channels) is the schema's default unless a test names one (workflow runs: one unit of block 1.1).

Values are plain config dicts, as a user's YAML file holds them; ``validate_config`` fills in the
schema's defaults where a test needs the full config."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import yaml

ONE_UNIT = {"blocks": ["1.1"], "channels": [0]}  # the tiny workflow runs' default study
TINY = {
    "model": {"weights": "random:0", "device": "cpu", "allow_download": False},
    "fv": {"steps": 2, "threads": 1, "log_every": 1},
    "activations": {"batch_size": 4, "workers": 0, "threads": 1, "log_every": 1},
    "analysis": {"batch_size": 8, "threads": 1},
}


def merged(config: dict, change: dict) -> dict:
    """A copy of ``config`` with ``change`` applied: a dict value updates that section (one level
    deep), any other value replaces it."""
    out = copy.deepcopy(config)
    for section, value in change.items():
        if isinstance(value, dict) and isinstance(out.get(section), dict):
            out[section].update(copy.deepcopy(value))
        else:
            out[section] = copy.deepcopy(value)
    return out


def tiny_config(results=None, data=None, **sections) -> dict:
    """The tiny settings with ``results`` and ``dataset.path`` (when given) and ``sections`` merged in."""
    where = {}
    if results is not None:
        where["results"] = str(results)
    if data is not None:
        where["dataset"] = {"path": str(data)}
    return merged(merged(TINY, where), sections)


def write_config(path: Path, config: dict) -> Path:
    path = Path(path)
    path.write_text(yaml.safe_dump(config))
    return path


def tiny_config_file(tmp: Path, data: Path, **sections) -> Path:
    """``tmp/tiny.yaml``: the tiny settings (study: ONE_UNIT unless given) with results under
    ``tmp/results``."""
    sections.setdefault("study", ONE_UNIT)
    return write_config(Path(tmp) / "tiny.yaml", tiny_config(Path(tmp) / "results", data, **sections))


def changed_config_file(config_file: Path, folder: Path, change: dict) -> Path:
    """A new YAML file in ``folder``: ``config_file``'s config with ``change`` merged in."""
    config = merged(yaml.safe_load(Path(config_file).read_text()), change)
    return write_config(Path(folder) / f"changed-{uuid.uuid4().hex}.yaml", config)
