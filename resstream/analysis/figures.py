"""Figs 1-8 of the paper, drawn from the per-block tables (``resstream.analysis.summary``), never recomputed.

Every figure is titled by block, saved as PNG and PDF, names the weights in its title, and carries
a large "RANDOM WEIGHTS — not pretrained" mark whenever the weights are random (``weights_source``), so a demo
figure cannot pass for a result, and a "CUSTOM CHECKPOINT — not torchvision's weights" mark when
they come from a checkpoint of one's own (``model.checkpoint: any``).  Image grids (Figs 1, 6, 7, 8) read the FV PNGs, the
channel-FV PNGs and the exemplar grids from the folders the figure's job was given (its inputs);
a picture that does not exist is drawn as a labelled blank cell rather than failing the figure.

One module of about 400 lines on purpose: the eight figures share the row builders, the weights
marks and the blank-cell handling, and each figure is one short function.
"""

from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from resstream.analysis import metrics  # noqa: E402
from resstream.model.weights_source import weights_source  # noqa: E402
from resstream.base.job_spec import by_block  # noqa: E402
from resstream.base.paths import chunk_unit_pngs, layer_unit_pngs  # noqa: E402

RANDOM_MARK = "RANDOM WEIGHTS — not pretrained"
CUSTOM_MARK = "CUSTOM CHECKPOINT — not torchvision's weights"
PAPER_BLOCKS = ("1.1", "2.0", "2.1", "3.0", "3.1", "4.0", "4.1")
# Fig 2's panel positions in the paper: 1.1, 2.0, 2.1, blank / 3.0, 3.1, 4.0, 4.1
PAPER_FIG2_SLOTS = {"1.1": 0, "2.0": 1, "2.1": 2, "3.0": 4, "3.1": 5, "4.0": 6, "4.1": 7}
GROUP_COLORS = {metrics.OVERWRITE: "tab:red", metrics.MIX: "tab:green", metrics.SKIP: "tab:blue", metrics.NO_GROUP: "0.6"}
PASS_ALL_COLOR, PASS_NOMIX_COLOR = "purple", "gold"  # Fig 5 as in the paper


def weights_label(weights: dict | None) -> str:
    if not weights:
        return "weights unknown"
    return weights.get("label") or f"{weights.get('arch')} {weights.get('source')}"


def is_trained(weights: dict | None) -> bool:
    """Weights that are not random (torchvision's or a checkpoint of one's own)."""
    return weights_source(weights) != "random"


def is_custom(weights: dict | None) -> bool:
    """Weights from a checkpoint of one's own (``model.checkpoint: any``), not torchvision's."""
    return bool(weights and weights.get("kind") == "custom")


def finish(fig, title: str, weights: dict | None, png: str, pdf: str) -> list[str]:
    """Title with the weights, the random-weights mark where due, save PNG + PDF; return the texts.
    The PNG is in 256 adaptive colours: a third of the bytes of full colour for the picture grids
    (the report embeds every PNG), no visible change at this size; the PDF keeps full colour."""
    fig.suptitle(f"{title}\n{weights_label(weights)}", fontsize=11)
    if not is_trained(weights):
        fig.text(0.5, 0.5, RANDOM_MARK, color="red", alpha=0.35, fontsize=28, fontweight="bold",
                 ha="center", va="center", rotation=20, transform=fig.transFigure, zorder=1000)
        fig.text(0.01, 0.005, RANDOM_MARK, color="red", fontsize=10, fontweight="bold", ha="left", va="bottom")
    if is_custom(weights):
        digest = weights.get("file_sha256")
        fig.text(0.99, 0.005, CUSTOM_MARK + (f" (file sha256 {digest[:12]})" if digest else ""), color="darkorange",
                 fontsize=10, fontweight="bold", ha="right", va="bottom")
    texts = [t.get_text() for t in fig.texts]
    texts += [ax.get_title() for ax in fig.axes]
    for path in (png, pdf):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(png, dpi=110)
    fig.savefig(pdf)
    plt.close(fig)
    with Image.open(png) as full:
        reduced = full.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    reduced.save(png, optimize=True)
    return texts


def _empty(ax, text: str):
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, wrap=True, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


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
        for i, (col, label) in enumerate((("bn_gamma_abs", "|branch BN γ| (bn2; bn3 in Bottleneck)"),
                                          ("conv_w_abs_mean", "mean |last branch conv W|"))):
            ax = axes[i, j]
            m, y = df["M"].to_numpy(dtype=float), df[col].to_numpy(dtype=float)
            ax.scatter(m, y, s=10, c=[GROUP_COLORS[g] for g in df["mix_group"]], edgecolors="none")
            r = metrics.spearman(m, y)
            ax.set_title(f"{block}: ρ={_fmt(r.statistic)}, p={_fmt_p(r.pvalue)}" + ("" if r.status.startswith("ok") else f"\n({r.status})"), fontsize=9)
            ax.set_xlim(-0.1, 5.1)
            ax.set_xlabel("mix ratio M", fontsize=8)
            ax.set_ylabel(label, fontsize=8)
    fig.tight_layout(rect=(0, 0.02, 1, 0.88))
    return finish(fig, "Fig 3: weight magnitudes vs mix ratio (Spearman)", weights, png, pdf)


def _fmt(x) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    text = f"{x:.3f}"
    return "0.000" if text == "-0.000" else text


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
            ax.set_title(f"{block}: F={_fmt(a.statistic)}, p={_fmt_p(a.pvalue)}{extra}{why}", fontsize=8)
            ax.set_xlim(-0.1, 5.1)
            ax.set_xlabel("mix ratio M (skip ≥ 1 > overwrite)", fontsize=8)
            ax.set_ylabel(label, fontsize=8)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6, loc="best")
    fig.tight_layout(rect=(0, 0.02, 1, 0.88))
    return finish(fig, "Fig 4: block response to the input's FV (top) and B-I rank correlation (bottom)", weights, png, pdf)


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


# --- image grids (Figs 1, 6, 7, 8) ----------------------------------------------------------------------


class ImageSource:
    """FV PNGs, channel-objective FV PNGs and exemplar grids by (layer, channel), from the folders a
    figure job was given: FV and channel-FV chunk folders, per-layer exemplar folders."""

    def __init__(self, fv_dirs=(), exemplar_dirs=(), channel_fv_dirs=()):
        self._fv = chunk_unit_pngs(fv_dirs)
        self._exemplars = layer_unit_pngs(exemplar_dirs)
        self._channel_fv = chunk_unit_pngs(channel_fv_dirs)

    def fv(self, layer: str, channel: int):
        return _read_if(self._fv.get((layer, channel)))

    def channel_fv(self, layer: str, channel: int):
        return _read_if(self._channel_fv.get((layer, channel)))

    def exemplars(self, layer: str, channel: int):
        return _read_if(self._exemplars.get((layer, channel)))


def _read_if(path: str | None):
    return _read(path) if path and os.path.exists(path) else None


def _read(path: str):
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


GRID_COLUMNS = (("fv", "I"), ("fv", "B"), ("fv", "O"), ("top9", "I"), ("top9", "B"), ("top9", "O"))


def channel_grid_columns(roles=("I", "B", "O")) -> tuple:
    """Figs 1 and 6 add the channel-objective FVs (whole-map mean) of the roles that have them
    (``atlas.channel_fvs``), between the centre FVs and the top-9 grids."""
    return GRID_COLUMNS[:3] + tuple(("chfv", r) for r in ("I", "B", "O") if r in roles) + GRID_COLUMNS[3:]
COLUMN_TITLES = {"fv": "centre FV", "chfv": "channel FV", "top9": "top-9"}


def channel_grid(rows: list[dict], layers_by_block: dict, source: ImageSource, title: str, weights, png: str, pdf: str,
                 empty_text: str = "no channels", columns=GRID_COLUMNS) -> list[str]:
    """One row per channel: centre FV of I, B, O, (channel FVs,) then the top-9 grids of I, B, O.

    ``rows``: dicts with ``block``, ``channel`` and ``label`` (shown on the left)."""
    n = max(1, len(rows))
    row_in = grid_row_inches(n)
    fig, axes = plt.subplots(n, len(columns), figsize=(1.7 * row_in / 1.9 * len(columns) + 1.6, row_in * n + 1.3),
                             squeeze=False)
    if not rows:
        for ax in axes.flat:
            ax.axis("off")
        _empty(axes[0, 0], empty_text)
    for i, row in enumerate(rows):
        layers = layers_by_block[row["block"]]
        for j, (kind, role) in enumerate(columns):
            ax = axes[i, j]
            layer = layers[role]
            lookup = {"fv": source.fv, "chfv": source.channel_fv, "top9": source.exemplars}[kind]
            img = lookup(layer, row["channel"])
            if img is None:
                _empty(ax, "missing")
            else:
                ax.imshow(img)
                ax.set_xticks([])
                ax.set_yticks([])
            if i == 0:
                ax.set_title(f"{COLUMN_TITLES[kind]} {role}", fontsize=9)
            if j == 0:
                ax.set_ylabel(row["label"], fontsize=7, rotation=0, ha="right", va="center", labelpad=8)
    fig.tight_layout(rect=(0.02, 0.02, 1, 1 - 1.0 / (row_in * n + 1.3)))
    return finish(fig, title, weights, png, pdf)


# A channel grid fits about a page, as the paper's Fig 8 (21 rows) does: rows shrink from 1.9 in
# towards 0.8 in as they grow in number, so a grid's PNG stays near a million pixels instead of
# growing with its rows (Fig 8 of 7 blocks was 1298 x 4114 px, 7 MB). The PDF keeps each picture
# at its full resolution for zooming; the atlas has every unit full size.
GRID_ROWS_INCHES = 16.0
GRID_ROW_INCHES = (0.8, 1.9)  # smallest, largest


def grid_row_inches(rows: int) -> float:
    smallest, largest = GRID_ROW_INCHES
    return min(largest, max(smallest, GRID_ROWS_INCHES / max(1, rows)))


def _row(block: str, df, channel: int, extra: str = "") -> dict:
    r = df[df["channel"] == channel].iloc[0]
    label = f"{block} ch {channel}\nM={_fmt(r['M'])}\nm={_fmt(r['m'])} n={_fmt(r['n'])}" + (f"\n{extra}" if extra else "")
    return {"block": block, "channel": int(channel), "label": label}


def fig6_rows(tables: dict, k: int = 3) -> list[dict]:
    rows = []
    for block, df in tables.items():
        for c in metrics.top_by_scale_metric(df["channel"], df["SM"], df["pass_all"], k=k):
            rows.append(_row(block, df, c, f"SM={_fmt(df.loc[df['channel'] == c, 'SM'].iloc[0])}"))
    return rows


def fig6_top_scale_metric(tables: dict, layers_by_block: dict, source: ImageSource, weights, png, pdf, k: int = 3,
                          channel_fv_roles=("I", "B", "O")):
    return channel_grid(fig6_rows(tables, k), layers_by_block, source,
                        f"Fig 6: top {k} channels by scale metric SM per block (passing all criteria)",
                        weights, png, pdf, empty_text="no channel passes all criteria in any block",
                        columns=channel_grid_columns(channel_fv_roles))


def fig7_both_criteria(fv_tables: dict, imnet_tables: dict, layers_by_block: dict, source: ImageSource, weights, png, pdf):
    rows = []
    for block, df in fv_tables.items():
        im = imnet_tables[block]
        for c in metrics.both_criteria(df["channel"], df["pass_all"], df["SM"], im["channel"], im["pass_all"]):
            rows.append(_row(block, df, c, f"SM={_fmt(df.loc[df['channel'] == c, 'SM'].iloc[0])}"))
    return channel_grid(rows, layers_by_block, source, "Fig 7: channels passing the FV and the ImageNet criteria, by FV SM",
                        weights, png, pdf, empty_text="no channel passes both the FV and the ImageNet criteria")


def fig8_closest_mixes(tables: dict, layers_by_block: dict, source: ImageSource, weights, png, pdf, k: int = 3):
    rows = [_row(block, df, c) for block, df in tables.items() for c in metrics.closest_to_one(df["channel"], df["M"], k=k)]
    return channel_grid(rows, layers_by_block, source, f"Fig 8: the {k} channels per block with M closest to 1",
                        weights, png, pdf, empty_text="no channel has a mix ratio")


def spectrum_examples(df) -> list[int]:
    """Default Fig 1 channels of a block: lowest M (overwrite), M closest to 1 (mix), highest M (skip)."""
    ok = df[np.isfinite(df["M"].to_numpy(dtype=float))].sort_values(["M", "channel"])
    if ok.empty:
        return []
    picks = [int(ok["channel"].iloc[0])] + metrics.closest_to_one(ok["channel"], ok["M"], k=1) + [int(ok["channel"].iloc[-1])]
    return list(dict.fromkeys(picks))


def fig1_rows(tables: dict, figure_channels: dict) -> list[dict]:
    rows = []
    chosen = figure_channels or {b: spectrum_examples(df) for b, df in tables.items()}
    for block, channels in chosen.items():
        if block not in tables:
            continue
        df = tables[block]
        for c in channels:
            if (df["channel"] == c).any():
                g = df.loc[df["channel"] == c, "mix_group"].iloc[0]
                rows.append(_row(block, df, c, g))
    return rows


def fig1_channel_grids(tables: dict, figure_channels: dict, layers_by_block: dict, source: ImageSource, weights, png, pdf,
                       channel_fv_roles=("I", "B", "O")):
    how = "listed in analysis.figure_channels" if figure_channels else "per block: lowest M, M closest to 1, highest M"
    return channel_grid(fig1_rows(tables, figure_channels), layers_by_block, source, f"Fig 1: channel grids ({how})",
                        weights, png, pdf, empty_text="none of the listed channels is in the study",
                        columns=channel_grid_columns(channel_fv_roles))


# --- driver: one figure from the table files --------------------------------------------------------------


def make_figure(fig: str, fv_csvs: dict, imnet_csvs: dict, png: str, pdf: str, *, fv_dirs=(), exemplar_dirs=(),
                channel_fv_dirs=(), figure_channels: dict | None = None, channel_fv_roles=("I", "B", "O")) -> list[str]:
    """Draw figure ``fig`` ("fig1".."fig8") from per-block table CSVs (``{block: path}``) and, for
    the image grids, the FV chunk folders, per-layer exemplar folders and channel-FV chunk folders
    the figure's job was given.  ``figure_channels`` (Fig 1) and ``channel_fv_roles`` (Figs 1, 6)
    are the figure's options.

    Figs 3 and 4 get the tables of their blocks only (the caller chooses which); the others every
    studied block.  Returns the figure's texts (titles, marks).
    """
    from resstream.base.tables import read_table

    fv, weights, layers = {}, None, {}
    for block, path in fv_csvs.items():
        df, meta = read_table(path)
        fv[block] = df
        weights = weights or meta.get("weights")
        layers[block] = meta.get("layers")
    source = ImageSource(fv_dirs, exemplar_dirs, channel_fv_dirs)
    if fig == "fig1":
        chosen = {b: list(c) for b, c in (figure_channels or {}).items()}
        return fig1_channel_grids(fv, chosen, layers, source, weights, png, pdf, channel_fv_roles)
    if fig == "fig2":
        return fig2_mix_histograms(fv, weights, png, pdf)
    if fig == "fig3":
        return fig3_weights_vs_mix(fv, weights, png, pdf)
    if fig == "fig4":
        return fig4_inhibition(fv, weights, png, pdf)
    if fig == "fig5":
        return fig5_scale_invariance(fv, weights, png, pdf)
    if fig == "fig6":
        return fig6_top_scale_metric(fv, layers, source, weights, png, pdf, channel_fv_roles=channel_fv_roles)
    if fig == "fig7":
        imnet = {b: read_table(p)[0] for b, p in imnet_csvs.items()}
        return fig7_both_criteria(fv, imnet, layers, source, weights, png, pdf)
    if fig == "fig8":
        return fig8_closest_mixes(fv, layers, source, weights, png, pdf)
    raise ValueError(f"figure '{fig}' unknown; one of fig1..fig8")


def figure_job(job) -> list[str]:
    """Entry point of a figure job (its spec: :mod:`resstream.analysis.jobs`): figure
    ``params.figure`` as ``output.png`` and ``output.pdf``, with its options ``params.options``."""
    params, given = job.params, job.input
    return make_figure(params.figure, by_block(params.blocks, given.get("fv")),
                       by_block(params.blocks, given.get("imagenet")), job.output.png, job.output.pdf,
                       fv_dirs=given.get("fv_images", []), exemplar_dirs=given.get("exemplars", []),
                       channel_fv_dirs=given.get("channel_fvs", []), **params.options)
