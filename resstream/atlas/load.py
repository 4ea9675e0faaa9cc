"""Reading what the atlas shows into plain data: a block's metric tables as one record per channel,
where its pictures are (centre FV, channel FV, top-9 grid per (layer, channel)) with the exemplar
lists, and per block the index card's numbers: the counts from ``summary.json``
(:func:`resstream.analysis.summary.build_summary` made them; they are not counted again), the M
values and the analysis' factor from the block's table."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from resstream.analysis import metrics
from resstream.base.errors import UserError
from resstream.base.paths import EXEMPLAR_LIST, chunk_unit_pngs, layer_unit_pngs
from resstream.base.tables import read_table, recorded_mix_factor


class AtlasError(UserError, RuntimeError):
    """A missing table or picture the atlas needs; the message names it and the fix."""


# --- a block's pages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockTables:
    """A block's metric tables as the pages show them: one record per channel (sorted by channel)."""

    units: list[dict]
    weights: dict | None
    meta: dict  # the FV table's provenance (weights, layers, analysis and FV settings)


def read_block_tables(block: str, fv_csv: str, imagenet_csv: str | None) -> BlockTables:
    fv, meta = read_table(fv_csv)
    imagenet = read_table(imagenet_csv)[0] if imagenet_csv else None
    units = block_units(fv, imagenet)
    if not units:
        raise AtlasError(f"{fv_csv} has no channels: nothing to put in the atlas for block {block}")
    return BlockTables(units=units, weights=meta.get("weights"), meta=meta)


def block_units(fv: pd.DataFrame, imagenet: pd.DataFrame | None) -> list[dict]:
    """One record per channel: the FV table's row, plus the ImageNet row under ``imagenet_*``."""
    by_channel = {}
    if imagenet is not None:
        by_channel = {int(r["channel"]): r for r in imagenet.to_dict("records")}
    units = []
    for row in fv.sort_values("channel").to_dict("records"):
        rec = dict(row)
        rec["channel"] = int(row["channel"])
        other = by_channel.get(rec["channel"])
        for key, value in (other or {}).items():
            rec[f"imagenet_{key}"] = value
        units.append(rec)
    return units


def table_settings(meta: dict) -> dict:
    """The settings the block's numbers were made with (shown under its table)."""
    keep = {k: meta.get(k) for k in ("fv_hook", "o_relu", "analysis") if k in meta}
    if meta.get("fv_settings"):
        keep["fv_settings"] = meta["fv_settings"]
    return keep


@dataclass(frozen=True)
class Pictures:
    """The full-size PNGs of a block's units, each ``{(layer, channel): path}``, and the exemplar
    lists ``{(layer, channel): [(image path, activation), ...]}`` of its top-9 grids."""

    centre_fvs: dict
    channel_fvs: dict
    top9_grids: dict
    top9_lists: dict


def read_pictures(fv_dirs, channel_fv_dirs, exemplar_dirs) -> Pictures:
    return Pictures(
        centre_fvs=chunk_unit_pngs(fv_dirs),
        channel_fvs=chunk_unit_pngs(channel_fv_dirs),
        top9_grids=layer_unit_pngs(exemplar_dirs),
        top9_lists=read_exemplar_lists(exemplar_dirs),
    )


def read_exemplar_lists(exemplar_dirs) -> dict[tuple[str, int], list[tuple[str, float]]]:
    """``{(layer, channel): [(image path, activation), ...]}`` from each layer folder's ``exemplars.csv``."""
    out: dict[tuple[str, int], list[tuple[str, float]]] = {}
    for folder in exemplar_dirs:
        path = os.path.join(folder, EXEMPLAR_LIST)
        if not os.path.exists(path):
            continue
        df = read_table(path)[0].sort_values(["layer", "channel", "rank"])
        for row in df.itertuples(index=False):
            out.setdefault((row.layer, int(row.channel)), []).append((str(row.path), float(row.activation)))
    return out


# --- the index -------------------------------------------------------------------------------------

# summary.json's name of each spectrum group's count
SUMMARY_GROUP_KEYS = {
    metrics.OVERWRITE: "overwrite",
    metrics.MIX: "mix",
    metrics.SKIP: "skip",
    metrics.NO_GROUP: "no_mix_ratio",
}
# index card's scale-invariance counts <- summary.json's percentages (of the block's channels)
SUMMARY_COUNT_KEYS = {
    "all": "fv_all_criteria",
    "nomix": "fv_without_mix_criterion",
    "imagenet_all": "imagenet_all_criteria",
}


@dataclass(frozen=True)
class IndexCard:
    """One block's card on the index."""

    block: str
    layers: dict
    channels: int
    groups: dict  # {group: channels}
    scale_invariant: dict  # {"all" | "nomix" | "imagenet_all": channels}
    not_ok: int  # channels whose status is not "ok"
    m_values: np.ndarray  # clamped M of every channel (the histogram)
    mix_factor: float  # the factor f the table's groups were made with

    def counts(self) -> dict:
        return {
            "channels": self.channels,
            "groups": self.groups,
            "scale_invariant": self.scale_invariant,
            "not_ok": self.not_ok,
        }


def read_index_card(block: str, fv_csv: str, summary: dict, summary_path: str) -> IndexCard:
    """The card of ``block``: counts from the summary, M values, layers and factor from its FV table."""
    fv, meta = read_table(fv_csv)
    entry = (summary.get("blocks") or {}).get(block)
    n = len(fv)
    if entry is None:
        said = f"has no block {block}"
    elif entry.get("channels") != n:
        said = f"counts {entry.get('channels')} channels in block {block}, {fv_csv} holds {n}"
    elif "scale_invariant_counts" not in entry:
        said = f"has no scale_invariant_counts for block {block}"
    else:
        said = None
    if said is not None:
        raise AtlasError(
            f"{summary_path} {said}: the summary is older than the table. "
            "Fix: rerun the summary (snakemake -R analysis_summary)"
        )
    counts = entry["scale_invariant_counts"]
    return IndexCard(
        block=block,
        layers=meta.get("layers") or {},
        channels=n,
        groups={g: int(entry["spectrum_counts"][key]) for g, key in SUMMARY_GROUP_KEYS.items()},
        scale_invariant={k: int(counts[key]) for k, key in SUMMARY_COUNT_KEYS.items() if key in counts},
        not_ok=int((fv["status"].astype(str) != "ok").sum()),  # the summary counts only FV failures
        m_values=fv["M"].to_numpy(dtype=float),
        mix_factor=recorded_mix_factor(meta, fv_csv),
    )
