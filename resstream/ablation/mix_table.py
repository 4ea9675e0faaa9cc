"""The mix classes tested causally: for each block and mix class, the unscaled damage of a mean
lesion on the skip path only (I) and on the branch only (B), each beyond its size-matched random
lesions.  The paper reads a skip channel as carried by the skip path and an overwrite channel as
written by the branch, so it predicts: for overwrite channels a branch lesion hurts more than a
skip lesion, for skip channels the reverse.

Damage is measured two ways: the accuracy drop (points, unlesioned minus lesioned) and the KL
divergence of the logits from the unlesioned network's; the excess over random is the target's
minus the mean of its kept random trials.  The verdict uses the KL excess (accuracy alone is too
coarse on small folders and flat on random weights).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from resstream.ablation.channel_sets import RANDOM_PREFIX

PREDICTED_WORSE = {"overwrite": ("B", "I"), "skip": ("I", "B")}  # class -> (path predicted worse, other)
MIX_TABLE_COLUMNS = [
    "block",
    "mix_class",
    "channels",
    "path",
    "accuracy_drop",
    "accuracy_drop_random",
    "kl",
    "kl_random",
    "kl_excess",
    "agrees",
]


def _path_row(df: pd.DataFrame, plain_acc: float, block: str, cls: str, path: str) -> dict | None:
    pick = df[(df["block"] == block) & (df["path"] == path) & (df["kind"] == "mean") & (df["scale"] == 1.0)]
    target = pick[pick["set"] == cls]
    if target.empty:
        return None
    rand = pick[(pick["set"] == RANDOM_PREFIX + cls) & pick["kept"]]
    t = target.iloc[0]
    kl_random = float(rand["kl"].mean()) if len(rand) else np.nan
    return {
        "block": block,
        "mix_class": cls,
        "path": path,
        "accuracy_drop": plain_acc - t["accuracy"],
        "accuracy_drop_random": plain_acc - float(rand["accuracy"].mean()) if len(rand) else np.nan,
        "kl": t["kl"],
        "kl_random": kl_random,
        "kl_excess": t["kl"] - kl_random,
    }


def mix_class_table(df: pd.DataFrame, set_sizes: dict) -> pd.DataFrame:
    """Rows per block, mix class and path (I, B) from ``ablation.csv``'s rows; ``agrees`` (yes / no /
    n/a) on the class's row for the path the paper predicts worse.  ``set_sizes`` {(block, class): n}."""
    rows = []
    for block in df.loc[df["set"] != "none", "block"].unique():
        plain = df[(df["set"] == "none") & (df["scale"] == 1.0)]["accuracy"].iloc[0]
        for cls in ("skip", "mix", "overwrite"):
            by_path = {p: _path_row(df, plain, block, cls, p) for p in ("I", "B")}
            for path, row in by_path.items():
                if row is None:
                    continue
                row["channels"] = set_sizes.get((block, cls), np.nan)
                row["agrees"] = _verdict(cls, path, by_path)
                rows.append(row)
    return pd.DataFrame(rows, columns=MIX_TABLE_COLUMNS)


def _verdict(cls: str, path: str, by_path: dict) -> str:
    """yes / no on the predicted-worse path's row of skip and overwrite; n/a elsewhere or when a
    path is missing or has no kept random trial."""
    if cls not in PREDICTED_WORSE or path != PREDICTED_WORSE[cls][0]:
        return "n/a"
    worse, other = (by_path[p] for p in PREDICTED_WORSE[cls])
    if other is None or np.isnan(worse["kl_excess"]) or np.isnan(other["kl_excess"]):
        return "n/a"
    return "yes" if worse["kl_excess"] > other["kl_excess"] else "no"
