"""The follow-up paper's claims beside a run's lesions (``followup_check.csv``): for each block the
paper lesioned, the author's mean-ablation accuracies at each scale next to this run's (set
``pass_all``, kind ``mean``, path ``O``), and the paper's claim judged on the ratio to the random
lesions.  With random weights nothing is judged: they recognise nothing (a checkpoint of one's own is judged)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from resstream.ablation.figure import ratio_table

CLAIMS = Path(__file__).with_name("followup_claims.yaml")
COLUMNS = ["block", "scale", "paper_accuracy", "run_accuracy", "run_ratio", "verdict", "source"]


def load_followup(path=CLAIMS) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def _verdict(ratios: pd.Series, judged: bool) -> str:
    """On the block's last row: the claim holds when the ratio at the largest scale-up is below 1
    and below the unscaled ratio."""
    if not judged:
        return "not judged: random weights"
    up = ratios[ratios.index > 1.0].dropna()
    if 1.0 not in ratios.index or up.empty or np.isnan(ratios[1.0]):
        return "not judged: needs scale 1 and a scale-up with kept random trials"
    last = up.iloc[-1]
    return "reproduced" if last < 1 and last < ratios[1.0] else "not reproduced"


def followup_check(df: pd.DataFrame, trained: bool, claims: dict | None = None) -> pd.DataFrame:
    """Rows per lesioned block the paper reports and scale (the paper's scales first)."""
    claims = claims or load_followup()
    source = f"{claims['paper']}; {claims['origin']}"
    ratios = ratio_table(df)
    mine = ratios[(ratios["set"] == "pass_all") & (ratios["kind"] == "mean") & (ratios["path"] == "O")]
    targets = df[(df["set"] == "pass_all") & (df["kind"] == "mean") & (df["path"] == "O") & (df["trial"] == -1)]
    rows = []
    for block, paper in claims["accuracy"].items():
        if block not in set(targets["block"]):
            continue
        by_scale = mine[mine["block"] == block].set_index("scale")["ratio"]
        acc = targets[targets["block"] == block].set_index("scale")["accuracy"]
        for scale, value in paper["by_scale"].items():
            rows.append({"block": block, "scale": float(scale), "paper_accuracy": value,
                         "run_accuracy": acc.get(float(scale), np.nan), "run_ratio": by_scale.get(float(scale), np.nan),
                         "verdict": "", "source": source})
        rows[-1]["verdict"] = _verdict(by_scale.sort_index(), trained)
    return pd.DataFrame(rows, columns=COLUMNS)
