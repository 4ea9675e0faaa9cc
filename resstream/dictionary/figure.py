"""The feature-M figure: per block, the histogram of its dictionary features' M (decoder norm into I
over decoder norm into B) beside the histogram of its channels' M, on the channel figure's bins."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from resstream.analysis.metrics import HIST_BINS  # noqa: E402


def feature_m(features_json: str, live_only: bool = True) -> np.ndarray:
    """The clamped M of a block's features (those that fired on held-out images, by default)."""
    with open(features_json) as f:
        features = json.load(f)["features"]
    return np.array([x["M_clamped"] for x in features if x["M_clamped"] is not None and (x["firing"] > 0 or not live_only)])


def channel_m(table_csv: str) -> np.ndarray:
    """The clamped M of a block's studied channels (the analysis stage's FV table)."""
    m = pd.read_csv(table_csv)["M"].to_numpy(dtype=float)
    return m[np.isfinite(m)]


def feature_m_figure(features: dict[str, str], channels: dict[str, str], png: str) -> str:
    """``features`` / ``channels``: ``{block: features.json}`` / ``{block: FV table csv}``; each panel's
    histograms are shares (features and channels differ in number)."""
    blocks = list(features)
    cols = min(4, len(blocks))
    fig, axes = plt.subplots(math.ceil(len(blocks) / cols), cols, figsize=(3.2 * cols, 2.6 * math.ceil(len(blocks) / cols)),
                             squeeze=False)
    for ax, block in zip(axes.flat, blocks):
        f, c = feature_m(features[block]), channel_m(channels[block])
        for values, label, style in ((f, f"features ({len(f)})", {"alpha": 0.6}), (c, f"channels ({len(c)})", {"histtype": "step", "lw": 1.5})):
            if len(values):
                ax.hist(values, bins=HIST_BINS, weights=np.full(len(values), 1 / len(values)), label=label, **style)
        ax.set_title(f"block {block}")
        ax.set_xlabel("M (skip > 1 > overwrite)")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(blocks):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png
