"""Figs 2-5 of the paper: histograms and scatter plots of the per-block metric tables
(``resstream.analysis.summary``), never recomputed."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from resstream.analysis import metrics  # noqa: E402
from resstream.analysis.figure_marks import figure_number, finish  # noqa: E402

PAPER_BLOCKS = ("1.1", "2.0", "2.1", "3.0", "3.1", "4.0", "4.1")
# Fig 2's panel positions in the paper: 1.1, 2.0, 2.1, blank / 3.0, 3.1, 4.0, 4.1
PAPER_FIG2_SLOTS = {"1.1": 0, "2.0": 1, "2.1": 2, "3.0": 4, "3.1": 5, "4.0": 6, "4.1": 7}
GROUP_COLORS = {
    metrics.OVERWRITE: "tab:red",
    metrics.MIX: "tab:green",
    metrics.SKIP: "tab:blue",
    metrics.NO_GROUP: "0.6",
}
PASS_ALL_COLOR, PASS_NOMIX_COLOR = "purple", "gold"  # Fig 5 as in the paper


# --- Fig 2 -------------------------------------------------------------------------------------------


FIG2_MAX_COLUMNS = 6


def fig2_layout(blocks: list[str]) -> tuple[int, int, dict[str, int]]:
    """``(rows, cols, {block: slot})``: the paper's 2x4 grid for its seven blocks; up to 8 other
    blocks (any subset of resnet18's) row-major in up to 4 columns; more blocks (resnet34's 3-4-6-3,
    resnet152's 3-8-36-3, ConvNeXt's features.1/3/5/7, EfficientNet's features.1-7, RegNet's
    trunk_output.block1-4) one row per stage (the name's parent: MobileNets' flat ``features`` are
    one stage), a stage longer than ``FIG2_MAX_COLUMNS`` wrapping onto
    more rows, so the stages line up."""
    if sorted(blocks) == sorted(PAPER_BLOCKS):
        return 2, 4, {b: PAPER_FIG2_SLOTS[b] for b in blocks}
    if len(blocks) <= 8:
        cols = min(4, len(blocks))
        return math.ceil(len(blocks) / cols), cols, {b: i for i, b in enumerate(blocks)}
    stages: dict[str, list[str]] = {}
    for b in blocks:
        stages.setdefault(b.rpartition(".")[0], []).append(b)  # "2.1" -> "2", "features.3.1" -> "features.3"
    cols = max(1, min(FIG2_MAX_COLUMNS, max((len(v) for v in stages.values()), default=1)))
    slots, row = {}, 0
    for members in stages.values():
        for i, b in enumerate(members):
            slots[b] = (row + i // cols) * cols + i % cols
        row += math.ceil(len(members) / cols)
    return max(1, row), cols, slots


def fig2_mix_histograms(tables: dict, weights, png: str, pdf: str) -> list[str]:
    rows, cols, slots = fig2_layout(list(tables))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows + 1.2), squeeze=False)
    used = set(slots.values())
    for slot in range(rows * cols):
        if slot not in used:
            axes.flat[slot].axis("off")
    for block, df in tables.items():
        ax = axes.flat[slots[block]]
        counts, edges, dropped = metrics.mix_histogram(df["M"].to_numpy(dtype=float))
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="tab:blue", edgecolor="k", linewidth=0.4)
        ax.axvline(1.0, color="k", ls=":", lw=0.8)
        note = f", {dropped} without M (dead or missing)" if dropped else ""
        ax.set_title(f"{block} (n={len(df)}{note})", fontsize=10)
        ax.set_xlim(0, 5)
        ax.set_xlabel("mix ratio M (clamped at 5)", fontsize=8)
        ax.set_ylabel("channels", fontsize=8)
    fig.tight_layout(rect=(0, 0.02, 1, 0.9))
    return finish(fig, "Fig 2: mix ratio histograms (<1 overwrite, ~1 mix, >1 skip)", weights, png, pdf)


# --- Fig 3 -------------------------------------------------------------------------------------------


def fig3_weights_vs_mix(tables: dict, weights, png: str, pdf: str) -> list[str]:
    blocks = list(tables)
    fig, axes = plt.subplots(2, max(1, len(blocks)), figsize=(3.6 * max(1, len(blocks)), 6.4), squeeze=False)
    for j, block in enumerate(blocks):
        df = tables[block]
        for i, (col, label) in enumerate(
            (
                ("bn_gamma_abs", "|branch BN γ| (bn2; bn3 in Bottleneck)"),
                ("conv_w_abs_mean", "mean |last branch conv W|"),
            )
        ):
            ax = axes[i, j]
            m, y = df["M"].to_numpy(dtype=float), df[col].to_numpy(dtype=float)
            ax.scatter(m, y, s=10, c=[GROUP_COLORS[g] for g in df["mix_group"]], edgecolors="none")
            r = metrics.spearman(m, y)
            ax.set_title(
                f"{block}: ρ={figure_number(r.statistic)}, p={_fmt_p(r.pvalue)}"
                + ("" if r.status.startswith("ok") else f"\n({r.status})"),
                fontsize=9,
            )
            ax.set_xlim(-0.1, 5.1)
            ax.set_xlabel("mix ratio M", fontsize=8)
            ax.set_ylabel(label, fontsize=8)
    fig.tight_layout(rect=(0, 0.02, 1, 0.88))
    return finish(fig, "Fig 3: weight magnitudes vs mix ratio (Spearman)", weights, png, pdf)


def _fmt_p(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.2g}"


# --- Fig 4 -------------------------------------------------------------------------------------------


def fig4_inhibition(tables: dict, weights, png: str, pdf: str) -> list[str]:
    blocks = list(tables)
    fig, axes = plt.subplots(2, max(1, len(blocks)), figsize=(3.6 * max(1, len(blocks)), 6.6), squeeze=False)
    for j, block in enumerate(blocks):
        df = tables[block]
        groups = df["fig4_group"].to_numpy()
        m = df["M"].to_numpy(dtype=float)
        for i, (col, label) in enumerate((("in_mid", "B(X̂_I)"), ("rho_BI", "ρ(B, I | I>0)"))):
            ax = axes[i, j]
            y = df[col].to_numpy(dtype=float)
            ax.scatter(m, y, s=10, c=[GROUP_COLORS[g] for g in groups], edgecolors="none")
            means = metrics.group_means(y, groups)
            for g, xs in ((metrics.OVERWRITE, (0, 1)), (metrics.SKIP, (1, 5))):
                if means.get(g) is not None:
                    ax.hlines(means[g], *xs, colors=GROUP_COLORS[g], lw=2, label=f"{g} mean {means[g]:.3g}")
            a = metrics.anova(y[groups == metrics.OVERWRITE], y[groups == metrics.SKIP])
            ax.axhline(0, color="k", lw=0.5)
            ax.axvline(1, color="k", ls=":", lw=0.8)
            undefined = int(np.isnan(y).sum())
            extra = f", {undefined} NaN" if undefined else ""
            why = "" if np.isfinite(a.statistic) else f"\n({a.status})"
            ax.set_title(f"{block}: F={figure_number(a.statistic)}, p={_fmt_p(a.pvalue)}{extra}{why}", fontsize=8)
            ax.set_xlim(-0.1, 5.1)
            ax.set_xlabel("mix ratio M (skip ≥ 1 > overwrite)", fontsize=8)
            ax.set_ylabel(label, fontsize=8)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6, loc="best")
    fig.tight_layout(rect=(0, 0.02, 1, 0.88))
    return finish(
        fig, "Fig 4: block response to the input's FV (top) and B-I rank correlation (bottom)", weights, png, pdf
    )


# --- Fig 5 -------------------------------------------------------------------------------------------


def fig5_scale_invariance(tables: dict, weights, png: str, pdf: str) -> list[str]:
    blocks = list(tables)
    pct_all = [100.0 * tables[b]["pass_all"].sum() / max(1, len(tables[b])) for b in blocks]
    pct_nomix = [100.0 * tables[b]["pass_nomix"].sum() / max(1, len(tables[b])) for b in blocks]
    fig, ax = plt.subplots(figsize=(min(1.1 * len(blocks) + 3, 0.45 * len(blocks) + 8), 4.4))
    x = np.arange(len(blocks))
    ax.bar(x - 0.2, pct_all, 0.4, color=PASS_ALL_COLOR, label="all criteria (Eqs 2-4)")
    ax.bar(x + 0.2, pct_nomix, 0.4, color=PASS_NOMIX_COLOR, label="without mix criterion (Eqs 3-4)")
    for xi, a, b in zip(x, pct_all, pct_nomix):
        ax.text(xi - 0.2, a, f"{a:.0f}", ha="center", va="bottom", fontsize=7)
        ax.text(xi + 0.2, b, f"{b:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, blocks, rotation=90 if len(blocks) > 16 else 0)
    ax.set_xlabel("block")
    ax.set_ylabel("% channels scale invariant")
    ax.set_title("FV criteria per block", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 0.86))
    return finish(fig, "Fig 5: percent of channels passing the scale-invariance criteria", weights, png, pdf)
