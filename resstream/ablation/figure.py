"""The follow-up paper's figure: for each lesioned target set, its accuracy divided by each kept
random trial's at the same scale, mean ± standard error over the trials, against the scale.  A
ratio below 1 that falls as the images grow means the target channels matter more for scaled
images than channels that hurt unscaled recognition as much."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from resstream.ablation.channel_sets import RANDOM_PREFIX  # noqa: E402
from resstream.analysis.figure_marks import finish  # noqa: E402

CONDITION = ["block", "set", "kind", "path"]


RATIO_COLUMNS = CONDITION + ["scale", "fill", "accuracy", "random_accuracy", "random_se", "ratio", "se", "trials", "n"]


def _se(values: np.ndarray) -> float:
    return values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else np.nan


def ratio_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per target condition and scale (and fill): the target's ``accuracy``, the kept
    random trials' mean ``random_accuracy`` and its standard error ``random_se``, ``ratio`` (mean
    over kept trials of target / random accuracy; NaN when a kept trial has accuracy 0), ``se`` (its
    standard error), ``trials`` (kept trials) and ``n`` (images).  Written as ``lesion_ratios.csv``: the atlas and the scorecard read it."""
    rows = []
    targets = df[(df["trial"] == -1) & (df["set"] != "none")]
    for _, t in targets.iterrows():
        same = df[
            (df["block"] == t["block"])
            & (df["set"] == RANDOM_PREFIX + t["set"])
            & (df["kind"] == t["kind"])
            & (df["path"] == t["path"])
            & (df["scale"] == t["scale"])
            & (df["fill"].astype(str) == str(t["fill"]))
            & df["kept"]
        ]
        acc = same["accuracy"].to_numpy(dtype=float)
        ratios = t["accuracy"] / acc if len(acc) and (acc > 0).all() else np.array([])
        rows.append(
            {
                **{k: t[k] for k in CONDITION},
                "scale": t["scale"],
                "fill": t["fill"],
                "accuracy": t["accuracy"],
                "random_accuracy": acc.mean() if len(acc) else np.nan,
                "random_se": _se(acc),
                "ratio": ratios.mean() if len(ratios) else np.nan,
                "se": _se(ratios),
                "trials": len(acc),
                "n": t["n"],
            }
        )
    return pd.DataFrame(rows, columns=RATIO_COLUMNS)


def ratio_figure(table: pd.DataFrame, weights: dict, png: str, pdf: str) -> list[str]:
    """Accuracy ratio (target / random) against scale, one line per block, set, kind, path and fill,
    from :func:`ratio_table`'s rows."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for key, g in table.groupby(CONDITION + ["fill"], sort=False, dropna=False):
        g = g.sort_values("scale")
        fill = f", fill {key[-1]}" if str(key[-1]) not in ("", "nan") else ""
        ax.errorbar(
            g["scale"],
            g["ratio"],
            yerr=g["se"].fillna(0),
            marker="o",
            capsize=3,
            label=f"{key[0]} {key[1]} ({key[2]}, {key[3]}{fill})",
        )
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    if not table["ratio"].notna().any():  # e.g. random weights: every accuracy 0, no ratio defined
        ax.text(
            0.5,
            0.5,
            "no ratio defined: a kept random lesion's accuracy is 0 (or no trial was kept)\n"
            "see ablation.csv (accuracy, kl) and lesion_ratios.csv",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=8,
        )
    ax.set_xlabel("scale (1: unscaled; >1 scaled up, <1 scaled down)")
    ax.set_ylabel("accuracy / random-lesion accuracy")
    if len(table):
        ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 0.9))
    return finish(fig, "Lesions: accuracy relative to size-matched random lesions (± s.e.)", weights, png, pdf)
