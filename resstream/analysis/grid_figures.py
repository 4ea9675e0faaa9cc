"""Figs 1, 6, 7 and 8 of the paper: image grids of chosen channels (centre FVs, channel FVs, top-9
exemplars) read from the folders the figure's job was given (its inputs); a picture that does not
exist is drawn as a labelled blank cell rather than failing the figure."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from resstream.analysis import metrics  # noqa: E402
from resstream.analysis.figure_marks import empty_panel, figure_number, finish  # noqa: E402
from resstream.base.paths import chunk_unit_pngs, layer_unit_pngs  # noqa: E402


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


def channel_grid(
    rows: list[dict],
    layers_by_block: dict,
    source: ImageSource,
    title: str,
    weights,
    png: str,
    pdf: str,
    empty_text: str = "no channels",
    columns=GRID_COLUMNS,
) -> list[str]:
    """One row per channel: centre FV of I, B, O, (channel FVs,) then the top-9 grids of I, B, O.

    ``rows``: dicts with ``block``, ``channel`` and ``label`` (shown on the left)."""
    n = max(1, len(rows))
    row_in = grid_row_inches(n)
    fig, axes = plt.subplots(
        n, len(columns), figsize=(1.7 * row_in / 1.9 * len(columns) + 1.6, row_in * n + 1.3), squeeze=False
    )
    if not rows:
        for ax in axes.flat:
            ax.axis("off")
        empty_panel(axes[0, 0], empty_text)
    for i, row in enumerate(rows):
        layers = layers_by_block[row["block"]]
        for j, (kind, role) in enumerate(columns):
            ax = axes[i, j]
            layer = layers[role]
            lookup = {"fv": source.fv, "chfv": source.channel_fv, "top9": source.exemplars}[kind]
            img = lookup(layer, row["channel"])
            if img is None:
                empty_panel(ax, "missing")
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
    label = f"{block} ch {channel}\nM={figure_number(r['M'])}\nm={figure_number(r['m'])} n={figure_number(r['n'])}" + (
        f"\n{extra}" if extra else ""
    )
    return {"block": block, "channel": int(channel), "label": label}


def fig6_rows(tables: dict, k: int = 3) -> list[dict]:
    rows = []
    for block, df in tables.items():
        for c in metrics.top_by_scale_metric(df["channel"], df["SM"], df["pass_all"], k=k):
            rows.append(_row(block, df, c, f"SM={figure_number(df.loc[df['channel'] == c, 'SM'].iloc[0])}"))
    return rows


def fig6_top_scale_metric(
    tables: dict,
    layers_by_block: dict,
    source: ImageSource,
    weights,
    png,
    pdf,
    k: int = 3,
    channel_fv_roles=("I", "B", "O"),
):
    return channel_grid(
        fig6_rows(tables, k),
        layers_by_block,
        source,
        f"Fig 6: top {k} channels by scale metric SM per block (passing all criteria)",
        weights,
        png,
        pdf,
        empty_text="no channel passes all criteria in any block",
        columns=channel_grid_columns(channel_fv_roles),
    )


def fig7_both_criteria(
    fv_tables: dict, imnet_tables: dict, layers_by_block: dict, source: ImageSource, weights, png, pdf
):
    rows = []
    for block, df in fv_tables.items():
        im = imnet_tables[block]
        for c in metrics.both_criteria(df["channel"], df["pass_all"], df["SM"], im["channel"], im["pass_all"]):
            rows.append(_row(block, df, c, f"SM={figure_number(df.loc[df['channel'] == c, 'SM'].iloc[0])}"))
    return channel_grid(
        rows,
        layers_by_block,
        source,
        "Fig 7: channels passing the FV and the ImageNet criteria, by FV SM",
        weights,
        png,
        pdf,
        empty_text="no channel passes both the FV and the ImageNet criteria",
    )


def fig8_closest_mixes(tables: dict, layers_by_block: dict, source: ImageSource, weights, png, pdf, k: int = 3):
    rows = [
        _row(block, df, c) for block, df in tables.items() for c in metrics.closest_to_one(df["channel"], df["M"], k=k)
    ]
    return channel_grid(
        rows,
        layers_by_block,
        source,
        f"Fig 8: the {k} channels per block with M closest to 1",
        weights,
        png,
        pdf,
        empty_text="no channel has a mix ratio",
    )


def spectrum_examples(df) -> list[int]:
    """Default Fig 1 channels of a block: lowest M (overwrite), M closest to 1 (mix), highest M (skip)."""
    ok = df[np.isfinite(df["M"].to_numpy(dtype=float))].sort_values(["M", "channel"])
    if ok.empty:
        return []
    picks = (
        [int(ok["channel"].iloc[0])]
        + metrics.closest_to_one(ok["channel"], ok["M"], k=1)
        + [int(ok["channel"].iloc[-1])]
    )
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


def fig1_channel_grids(
    tables: dict,
    figure_channels: dict,
    layers_by_block: dict,
    source: ImageSource,
    weights,
    png,
    pdf,
    channel_fv_roles=("I", "B", "O"),
):
    how = "listed in analysis.figure_channels" if figure_channels else "per block: lowest M, M closest to 1, highest M"
    return channel_grid(
        fig1_rows(tables, figure_channels),
        layers_by_block,
        source,
        f"Fig 1: channel grids ({how})",
        weights,
        png,
        pdf,
        empty_text="none of the listed channels is in the study",
        columns=channel_grid_columns(channel_fv_roles),
    )
