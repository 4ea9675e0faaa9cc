"""What made a run's outputs, read from the outputs themselves: the report's captions and text.

``snakemake --report`` renders its captions with whatever config it is given, which need not be
the one that made the figures (``fv.steps: 999`` on figures made with 24 steps).  So the captions
read :func:`report_facts` instead: the weights, analysis settings and blocks from ``summary.json``
(itself made from the tables' sidecars), the FV settings from the chunks' ``fv.h5`` attributes, the
dataset from ``activations.h5`` and the comparison from its tables' sidecar.  Where the given config
differs, :func:`config_differences` lists how, and the report says so at the top.
"""

from __future__ import annotations

import glob
import json
import os

from resstream.analysis.summary import read_summary, sidecar_json, summary_json
from resstream.base.errors import UserError
from resstream.base.paths import activations_h5
from resstream.model.weights_source import weights_source

UNKNOWN = "not recorded"


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def distinct_fv_settings(results: str, layers) -> dict[str, list]:
    """``{setting: [distinct values]}`` over the ``fv.h5`` files of ``layers``' chunk folders (an
    unreadable file is passed over: the report says what it can)."""
    from resstream.fv.fv_file import FV_FILE_NAME, read_fv_file

    seen: dict[str, list] = {}
    for layer in sorted(set(layers)):
        for path in sorted(glob.glob(os.path.join(glob.escape(results), "fv", glob.escape(layer), "c*", FV_FILE_NAME))):
            try:
                settings = read_fv_file(os.path.dirname(path)).settings
            except (OSError, KeyError, ValueError, UserError):
                continue
            for key, value in (settings or {}).items():
                if value not in seen.setdefault(key, []):
                    seen[key].append(value)
    return seen


def _values(values: list | None) -> str:
    if not values:
        return UNKNOWN
    return " / ".join(str(v) for v in sorted(values, key=str))


def dataset_used(results: str) -> tuple[str, int | None]:
    """``(dataset root, number of images)`` recorded in ``activations.h5``."""
    from resstream.activations import store

    try:
        with store.open_activations(activations_h5(results)) as f:
            return store.dataset_root_given(f, UNKNOWN), store.image_count(f)
    except (OSError, KeyError, store.IncompleteActivationsError):
        return UNKNOWN, None


def run_facts(results: str) -> dict:
    """The settings that made the run under ``results``, from its outputs (``UNKNOWN`` where a
    file is missing)."""
    try:
        summary = read_summary(summary_json(results))
    except (OSError, ValueError):
        summary = {}
    weights = summary.get("weights") or {}
    settings = summary.get("settings") or {}
    analysis = settings.get("analysis") or {}
    blocks = summary.get("blocks") or {}
    layers = [layer for entry in blocks.values() for layer in (entry.get("layers") or {}).values()]
    fv = distinct_fv_settings(results, layers)
    dataset, images = dataset_used(results)
    return {
        "weights_label": weights.get("label", UNKNOWN),
        "weights_source": weights.get("source", UNKNOWN),
        "random": weights_source(weights) == "random",
        "custom": weights.get("kind") == "custom",
        "o_relu": settings.get("o_relu") or UNKNOWN,
        "o_read": o_read(weights.get("arch"), settings.get("o_relu") or UNKNOWN),
        "mix_rules": analysis.get("mix_rules", UNKNOWN),
        "mix_factor": analysis.get("mix_factor", UNKNOWN),
        "scale_rule": analysis.get("scale_rule", UNKNOWN),
        "scale_sign": analysis.get("scale_sign", UNKNOWN),
        "fv_steps": _values(fv.get("steps")),
        "fv_lr": _values(fv.get("lr")),
        "fv_hook": _values(fv.get("hook")),
        "blocks": ", ".join(blocks) or UNKNOWN,
        "channels": ", ".join(f"{b}: {e.get('channels')}" for b, e in blocks.items()) or UNKNOWN,
        "fig34_blocks": ", ".join(b for b, e in blocks.items() if "stats" in e) or UNKNOWN,
        "dataset": dataset,
        "images": images if images is not None else UNKNOWN,
    }


def o_read(arch: str | None, o_relu: str) -> str:
    """What O was, in words: before or after the ReLU that follows the sum, or (ConvNeXt,
    MobileNet, EfficientNet: nothing follows it) the sum itself."""
    from resstream.model.families import arch_family
    from resstream.model.structure import structure

    family = arch_family(arch or "")
    # the blocks' own record (their family's adapter), as the plan's o_relu check reads it
    if family is not None and any(b.has_sum and b.after_sum is None for b in structure(arch)):
        return f"O read as the residual sum (nothing follows it in {family})"
    return f"O read {o_relu}-ReLU"


def settings_line(facts: dict) -> str:
    """The caption's last paragraph (reStructuredText): what made the figure."""
    marks = ""
    if facts["random"]:
        marks = " (**RANDOM WEIGHTS — not pretrained**)"
    elif facts["custom"]:
        marks = " (**CUSTOM CHECKPOINT — not torchvision's weights**)"
    return (
        f"Weights: ``{facts['weights_label']}``{marks}; {facts['o_read']}; mix factor "
        f"{facts['mix_factor']}; scale rule ``{facts['scale_rule']}``, sign test ``{facts['scale_sign']}``; FV {facts['fv_steps']} steps, lr "
        f"{facts['fv_lr']}, hook ``{facts['fv_hook']}``. (Read from the outputs: summary.json, fv.h5.)"
    )


def config_differences(facts: dict, study) -> list[str]:
    """Where the config given to this snakemake command differs from what made the outputs."""
    cfg = study.config
    configured_steps = sorted({study.fv_settings(layer).steps for layer in study.layers})
    configured_lr = sorted({study.fv_settings(layer).lr for layer in study.layers})
    pairs = [
        ("model.weights", cfg["model"]["weights"], facts["weights_source"]),
        ("study.o_relu", cfg["study"]["o_relu"], facts["o_relu"]),
        ("study.blocks", ", ".join(study.study_blocks), facts["blocks"]),
        ("analysis.mix_rules", cfg["analysis"]["mix_rules"], facts["mix_rules"]),
        ("analysis.mix_factor", cfg["analysis"]["mix_factor"], facts["mix_factor"]),
        ("analysis.scale_rule", cfg["analysis"]["scale_rule"], facts["scale_rule"]),
        ("analysis.scale_sign", cfg["analysis"]["scale_sign"], facts["scale_sign"]),
        ("fv.steps", _values(configured_steps), facts["fv_steps"]),
        ("fv.lr", _values(configured_lr), facts["fv_lr"]),
        ("fv.hook", cfg["fv"]["hook"], facts["fv_hook"]),
    ]
    out = [
        f"{key} {configured} given, outputs made with {made}"
        for key, configured, made in pairs
        if made != UNKNOWN and str(configured) != str(made)
    ]
    path = cfg["dataset"]["path"]
    if facts["dataset"] != UNKNOWN and path and os.path.realpath(path) != os.path.realpath(facts["dataset"]):
        out.append(f"dataset.path {path} given, outputs made from {facts['dataset']}")
    return out


def compare_facts(compare_results: str) -> dict:
    """The runs and depth bins the comparison was made from (its tables' sidecar)."""
    from resstream.compare.runs import compare_outputs

    meta = _read_json(sidecar_json(compare_outputs(compare_results)["blocks"]))
    runs = meta.get("runs") or {}
    return {
        "runs": ", ".join(f"``{name}`` ({run.get('results')})" for name, run in runs.items()) or UNKNOWN,
        "depth_bins": meta.get("depth_bins", UNKNOWN),
    }


def report_facts(study) -> dict:
    """Everything the report's captions and text print, from the outputs; with the differences
    from the given config, which the report lists at its top."""
    facts = run_facts(study.config["results"])
    facts["settings_line"] = settings_line(facts)
    facts["differences"] = config_differences(facts, study)
    if study.config["compare"]["runs"]:
        facts["compare"] = compare_facts(study.config["compare"]["results"])
    return facts
