"""Tables on disk: a plain CSV (one row per record, the weights in the last column) with a JSON
sidecar of provenance beside it.  Every stage that writes or reads a table uses these functions;
this module imports no metric code, so a job that only writes tables (the measurements, the model
card, the exemplar lists) does not depend on how the metrics are derived."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from resstream.base.errors import UserError


class AnalysisError(UserError, RuntimeError):
    """An analysis input that cannot be used; the message names the file and the fix."""


WEIGHTS_COLUMN = "weights"


def weights_attr(attrs, where: str) -> dict | None:
    """The weights identity an HDF5 output records (its JSON attribute ``weights``), None when it records
    none; an attribute that is not JSON is refused with one line."""
    raw = attrs.get("weights")
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        raise AnalysisError(f"{where}: attribute 'weights' is not JSON. Fix: rerun the stage that wrote it.") from None


def recorded_mix_factor(meta: dict, path: str) -> float:
    """The factor f a metric table's spectrum groups were made with, as its sidecar records it
    (``analysis.mix_factor``).  Everything that reads the groups (summary, scorecard, atlas) takes
    it from here; a table that does not record it is refused, since a guessed f could contradict
    the groups the table holds."""
    factor = (meta.get("analysis") or {}).get("mix_factor")
    if factor is None:
        raise AnalysisError(
            f"{path} does not record the analysis.mix_factor its groups were made with. "
            "Fix: rebuild the table (snakemake -R metric_table)"
        )
    return float(factor)


def write_table(df: pd.DataFrame, path: str, meta: dict) -> None:
    """A plain CSV (header row, one row per record: ``pandas.read_csv``, R's ``read.csv`` and
    spreadsheets read it as is), and ``meta`` (weights identity, settings) as JSON beside it.

    The last column, ``weights``, names the weights that made each row (``meta['weights']['label']``
    unless the table brings its own, as the cross-model tables do), so a table copied away from
    its sidecar still says what made it."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    df = df.copy()
    if WEIGHTS_COLUMN not in df.columns:
        df[WEIGHTS_COLUMN] = (meta.get("weights") or {}).get("label", "unknown weights")
    df = df[[c for c in df.columns if c != WEIGHTS_COLUMN] + [WEIGHTS_COLUMN]]
    tmp = path + ".tmp"
    df.to_csv(tmp, index=False, float_format="%.9g")
    with open(sidecar_json(path), "w") as f:
        json.dump(meta, f, indent=2, default=json_default)
    os.replace(tmp, path)  # the CSV last: a CSV on disk always has its sidecar


def json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def read_table(path: str) -> tuple[pd.DataFrame, dict]:
    """``(table, meta)``; the status columns stay strings, pass flags booleans.  Tables written
    before the CSVs were plain (a ``# weights: ...`` first line) are read too."""
    if not os.path.exists(path):
        raise AnalysisError(f"analysis table {path} does not exist. Fix: run the workflow up to it (snakemake {path}).")
    with open(path) as f:
        first = f.readline()
    df = pd.read_csv(
        path, skiprows=1 if first.startswith("#") else 0, keep_default_na=False, na_values=["", "nan", "NaN"]
    )
    for col in ("pass_all", "pass_nomix"):
        if col in df.columns:
            df[col] = df[col].astype(str).str.lower().eq("true")
    for col in df.columns:
        if col.endswith("status") or col.endswith("group") or col in ("block", "stimulus", WEIGHTS_COLUMN):
            df[col] = df[col].astype(str)
    meta_path = sidecar_json(path)
    meta = {}
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
    return df, meta


def sidecar_json(csv_path: str) -> str:
    return os.path.splitext(csv_path)[0] + ".json"
