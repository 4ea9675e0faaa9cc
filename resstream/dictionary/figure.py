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
from resstream.base.job_spec import by_block  # noqa: E402


def feature_m(features_json: str, live_only: bool = True) -> np.ndarray:
    """The clamped M of a block's features (those that fired on held-out images, by default)."""
    with open(features_json) as f:
        features = json.load(f)["features"]
    return np.array(
        [x["M_clamped"] for x in features if x["M_clamped"] is not None and (x["firing"] > 0 or not live_only)]
    )


def channel_m(table_csv: str) -> np.ndarray:
    """The clamped M of a block's studied channels (the analysis stage's FV table)."""
    m = pd.read_csv(table_csv)["M"].to_numpy(dtype=float)
    return m[np.isfinite(m)]


def feature_m_figure(features: dict[str, str], channels: dict[str, str], png: str) -> str:
    """``features`` / ``channels``: ``{block: features.json}`` / ``{block: FV table csv}``; each panel's
    histograms are shares (features and channels differ in number)."""
    blocks = list(features)
    cols = min(4, len(blocks))
    fig, axes = plt.subplots(
        math.ceil(len(blocks) / cols), cols, figsize=(3.2 * cols, 2.6 * math.ceil(len(blocks) / cols)), squeeze=False
    )
    for ax, block in zip(axes.flat, blocks):
        f, c = feature_m(features[block]), channel_m(channels[block])
        for values, label, style in (
            (f, f"features ({len(f)})", {"alpha": 0.6}),
            (c, f"channels ({len(c)})", {"histtype": "step", "lw": 1.5}),
        ):
            if len(values):
                ax.hist(values, bins=HIST_BINS, weights=np.full(len(values), 1 / len(values)), label=label, **style)
        ax.set_title(f"block {block}")
        ax.set_xlabel("M (skip > 1 > overwrite)")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(blocks) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png


def dictionary_summary(folders: dict[str, str], channel_tables: dict[str, str], out_json: str) -> dict:
    """Per block: the held-out quality, and how many features make its scale-invariant studied channels
    (``pass_all`` in the FV table) against its other studied channels (medians)."""
    summary = {}
    for block, folder in folders.items():
        with open(f"{folder}/quality.json") as f:
            quality = json.load(f)
        with open(f"{folder}/channels.json") as f:
            needed = np.asarray(json.load(f)["features_per_O_channel"])
        table = pd.read_csv(channel_tables[block])
        invariant = table["pass_all"].fillna(False).astype(bool).to_numpy()
        channels = table["channel"].to_numpy()
        summary[block] = {
            **quality,
            "features_per_channel_median": {
                "scale_invariant": _median(needed[channels[invariant]]),
                "other": _median(needed[channels[~invariant]]),
            },
            "scale_invariant_channels": int(invariant.sum()),
        }
    with open(out_json, "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def _median(values: np.ndarray):
    return float(np.median(values)) if len(values) else None


def dictionary_figure_job(job) -> dict:
    """Entry point of the ``dictionary_figure`` job (its spec: :mod:`resstream.dictionary.jobs`): the
    feature-M figure ``output.png`` and the summary ``output.summary``."""
    blocks = job.params.blocks
    folders, tables = by_block(blocks, job.input.folders), by_block(blocks, job.input.tables)
    feature_m_figure({b: f"{d}/features.json" for b, d in folders.items()}, tables, job.output.png)
    return dictionary_summary(folders, tables, job.output.summary)
