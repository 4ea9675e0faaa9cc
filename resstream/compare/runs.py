"""Cross-model comparison: several finished runs (any supported family: ResNet, ResNeXt, RegNet,
ConvNeXt, MobileNetV2/V3, EfficientNet) side by side.

Input: ``{name: results folder}`` of runs that reached ``summary.json`` (config ``compare.runs``).
Each run's ``summary.json`` gives its weights (hence the architecture) and studied blocks; its
per-block FV metric tables (``analysis/{block}/fv_table.csv``) give every channel's mix ratio M.
Blocks are placed by **relative depth** = block index / number of blocks of the model (0-based
index over ALL the model's blocks, with or without a residual sum, so resnet18's 1.1 is 1/8 and
resnet50's 1.1 is 1/16), which lines up networks with different numbers of blocks.

Outputs in a folder of ``compare.results`` named after the runs compared (:func:`comparison_folder`),
so a second comparison never replaces a first:

* ``compare_blocks.csv``: one row per (model, block): arch, weights, block index, blocks in the
  model, relative depth and its bin, channels, overwrite / mix / skip counts, channels without M,
  median M, % scale invariant (all criteria and without the mix criterion, from ``summary.json``).
* ``compare_mix_histograms.csv``: per (model, depth bin) the pooled Fig 2 histogram of M (20 bins
  of 0.25 on [0, 5], clamped M) as counts and fractions, with the blocks it pools.
* ``compare_runs.csv``: per model the results folder, arch, family, weights label and digest.
* ``compare_depth_bins.csv``: the families side by side, one row per (model, depth bin): family,
  the blocks pooled, channels, overwrite / mix / skip fractions of the pooled channels and the
  channel-weighted % scale invariant (both criteria sets).
* ``compare_models.png|pdf``: top row one panel per depth bin with every model's normalised M
  histogram overlaid; bottom row % scale invariant per block and the spectrum fractions against
  relative depth, one colour per model.  Marked "RANDOM WEIGHTS" if any run's weights are random.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pandas as pd

from resstream.analysis import metrics
from resstream.analysis.summary import (
    AnalysisError,
    metric_table_csv,
    read_summary,
    read_table,
    summary_json,
    write_table,
)
from resstream.model.weights_source import combined_weights_source, weights_source

OUTPUTS = {
    "png": "compare_models.png",
    "pdf": "compare_models.pdf",
    "blocks": "compare_blocks.csv",
    "histograms": "compare_mix_histograms.csv",
    "runs": "compare_runs.csv",
    "by_depth": "compare_depth_bins.csv",
}


# Longer folder names are shortened (file systems allow 255 bytes per name).
MAX_FOLDER_NAME = 100


def comparison_folder(results: str, runs: dict[str, str]) -> str:
    """The folder of one comparison under ``compare.results``: the compared runs' names, sorted,
    joined by ``+`` (``resnet18+resnet50``), so comparisons of other runs land beside it instead of
    over it; the same names in another order are the same comparison.  A name too long for a
    folder keeps its first names and a digest of all of them."""
    names = sorted(runs)
    folder = "+".join(names)
    if len(folder) > MAX_FOLDER_NAME:
        digest = hashlib.sha256(folder.encode()).hexdigest()[:12]
        folder = f"{'+'.join(names[:3])[: MAX_FOLDER_NAME - 30]}+{len(names) - 3}-more-{digest}"
    return os.path.join(results, folder)


def compare_outputs(out_dir: str) -> dict[str, str]:
    """Every file the comparison writes: ``{key: path}`` (keys of :data:`OUTPUTS`)."""
    return {key: os.path.join(out_dir, name) for key, name in OUTPUTS.items()}


def relative_depth(index: int, n_blocks: int) -> float:
    """Block index (0-based, over all the model's blocks) / number of blocks: in [0, 1)."""
    return index / n_blocks


def depth_bin(rel: float, bins: int) -> int:
    return min(bins - 1, int(np.floor(rel * bins + 1e-9)))


def read_run_summary(name: str, results: str) -> tuple[dict, str, dict]:
    """``(summary, arch, {block name: BlockInfo})`` of a finished run; raises :class:`AnalysisError`
    naming ``compare.runs.<name>`` unless its summary and FV metric tables are there."""
    from resstream.model.structure import structure

    path = summary_json(results)
    if not os.path.exists(path):
        raise AnalysisError(f"compare.runs.{name}: {path} does not exist. Fix: run that workflow to its summary first.")
    try:
        summary = read_summary(path)
    except ValueError as exc:
        raise AnalysisError(
            f"compare.runs.{name}: {path} is not JSON ({exc}). Fix: rerun that run's analysis_summary."
        ) from None
    arch = (summary.get("weights") or {}).get("arch")
    if not arch:
        raise AnalysisError(
            f"compare.runs.{name}: {path} records no architecture (weights.arch). Fix: rerun its analysis stage."
        )
    blocks = {b.name: b for b in structure(arch)}
    if not summary.get("blocks"):
        raise AnalysisError(f"compare.runs.{name}: {path} has no blocks.")
    for block in summary["blocks"]:
        if block not in blocks:
            raise AnalysisError(f"compare.runs.{name}: block {block} of {path} is not a block of {arch}.")
        table = metric_table_csv(results, block, "fv")
        if not os.path.exists(table):
            raise AnalysisError(f"compare.runs.{name}: {table} does not exist. Fix: rerun that workflow to its tables.")
    return summary, arch, blocks


def check_runs(runs: dict[str, str], own_results: str) -> None:
    """The pre-flight of ``compare.runs``: every listed run but this one (built first) is finished."""
    for name, results in runs.items():
        if os.path.realpath(results) != os.path.realpath(own_results):
            read_run_summary(name, results)


def load_run(name: str, results: str) -> dict:
    """A run's summary and FV metric tables, with each block's place in its model."""
    summary, arch, blocks = read_run_summary(name, results)
    tables = {block: read_table(metric_table_csv(results, block, "fv"))[0] for block in summary["blocks"]}
    from resstream.model.families import arch_family

    return {
        "name": name,
        "results": results,
        "arch": arch,
        "family": arch_family(arch),
        "weights": summary["weights"],
        "summary": summary,
        "tables": tables,
        "n_blocks": len(blocks),
        "index": {b: blocks[b].index for b in tables},
    }


def block_rows(runs: list[dict], bins: int) -> pd.DataFrame:
    rows = []
    for run in runs:
        for block, df in run["tables"].items():
            s = run["summary"]["blocks"][block]
            rel = relative_depth(run["index"][block], run["n_blocks"])
            groups = df["mix_group"].to_numpy()
            m = df["M"].to_numpy(dtype=float)
            pct = s.get("percent_scale_invariant", {})
            rows.append(
                {
                    "model": run["name"],
                    "arch": run["arch"],
                    "family": run["family"],
                    "weights": run["weights"].get("label"),
                    "weights_source": weights_source(run["weights"]),
                    "block": block,
                    "block_index": run["index"][block],
                    "n_blocks": run["n_blocks"],
                    "relative_depth": rel,
                    "depth_bin": depth_bin(rel, bins),
                    "channels": len(df),
                    "overwrite": int((groups == metrics.OVERWRITE).sum()),
                    "mix": int((groups == metrics.MIX).sum()),
                    "skip": int((groups == metrics.SKIP).sum()),
                    "no_mix_ratio": int((~np.isfinite(m)).sum()),
                    "median_M": float(np.median(m[np.isfinite(m)])) if np.isfinite(m).any() else np.nan,
                    "pct_scale_invariant_all": pct.get("fv_all_criteria"),
                    "pct_scale_invariant_nomix": pct.get("fv_without_mix_criterion"),
                }
            )
    return pd.DataFrame(rows)


def histogram_rows(runs: list[dict], bins: int) -> pd.DataFrame:
    rows = []
    for run in runs:
        for k in range(bins):
            members = [
                b for b in run["tables"] if depth_bin(relative_depth(run["index"][b], run["n_blocks"]), bins) == k
            ]
            m = (
                np.concatenate([run["tables"][b]["M"].to_numpy(dtype=float) for b in members])
                if members
                else np.array([])
            )
            counts, edges, dropped = metrics.mix_histogram(m)
            total = counts.sum()
            for c, lo, hi in zip(counts, edges[:-1], edges[1:]):
                rows.append(
                    {
                        "model": run["name"],
                        "arch": run["arch"],
                        "family": run["family"],
                        "depth_bin": k,
                        "depth_lo": k / bins,
                        "depth_hi": (k + 1) / bins,
                        "blocks": " ".join(members),
                        "bin_lo": float(lo),
                        "bin_hi": float(hi),
                        "count": int(c),
                        "fraction": float(c) / total if total else np.nan,
                        "channels_without_M": dropped,
                    }
                )
    return pd.DataFrame(rows)


def depth_bin_rows(blocks: pd.DataFrame, bins: int) -> pd.DataFrame:
    """Per (model, depth bin) the pooled spectrum fractions and the channel-weighted % scale
    invariant of the blocks in the bin (empty bins included, as NaN)."""
    rows = []
    for model in dict.fromkeys(blocks["model"]):
        mine = blocks[blocks["model"] == model]
        for k in range(bins):
            b = mine[mine["depth_bin"] == k]
            n = int(b["channels"].sum())

            def weighted(col, b=b, n=n):
                values = b[col].to_numpy(dtype=float)
                return (
                    float((values * b["channels"].to_numpy(dtype=float)).sum() / n)
                    if n and np.isfinite(values).all()
                    else np.nan
                )

            rows.append(
                {
                    "model": model,
                    "family": mine["family"].iloc[0],
                    "arch": mine["arch"].iloc[0],
                    "depth_bin": k,
                    "depth_lo": k / bins,
                    "depth_hi": (k + 1) / bins,
                    "blocks": " ".join(b["block"]),
                    "channels": n,
                    **{
                        f"{g}_fraction": float(b[g].sum()) / n if n else np.nan
                        for g in (metrics.OVERWRITE, metrics.MIX, metrics.SKIP)
                    },
                    "pct_scale_invariant_all": weighted("pct_scale_invariant_all"),
                    "pct_scale_invariant_nomix": weighted("pct_scale_invariant_nomix"),
                }
            )
    return pd.DataFrame(rows)


def compare_runs(runs: dict[str, str], out_dir: str, depth_bins: int = 4) -> dict:
    """Read every run, write the tables and the figure; return ``{key: path}`` of the outputs."""
    if not runs:
        raise AnalysisError("compare.runs is empty: list at least one run (name: results folder).")
    loaded = [load_run(name, results) for name, results in runs.items()]
    out = compare_outputs(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    blocks = block_rows(loaded, depth_bins)
    hists = histogram_rows(loaded, depth_bins)
    labels = [f"{r['name']}: {r['weights'].get('label')}" for r in loaded]  # the tables' one line, the figure's lines
    meta = {
        "weights": {
            "label": "; ".join(labels),
            "weights_source": combined_weights_source(weights_source(r["weights"]) for r in loaded),
        },
        "runs": {r["name"]: {"results": r["results"], "weights": r["weights"]} for r in loaded},
        "depth_bins": depth_bins,
        "relative_depth": "block index (0-based over all the model's blocks) / number of blocks",
    }
    if any(r["weights"].get("kind") == "custom" for r in loaded):
        meta["weights"]["kind"] = "custom"  # the figure's CUSTOM CHECKPOINT mark (figure_marks.is_custom)
    write_table(blocks, out["blocks"], meta)
    write_table(hists, out["histograms"], meta)
    write_table(depth_bin_rows(blocks, depth_bins), out["by_depth"], meta)
    runs_df = pd.DataFrame(
        [
            {
                "model": r["name"],
                "results": r["results"],
                "arch": r["arch"],
                "family": r["family"],
                "n_blocks": r["n_blocks"],
                "studied_blocks": " ".join(r["tables"]),
                "weights": r["weights"].get("label"),
                "state_dict_sha256": r["weights"].get("state_dict_sha256"),
                "weights_source": weights_source(r["weights"]),
            }
            for r in loaded
        ]
    )
    write_table(runs_df, out["runs"], meta)
    figure_weights = dict(meta["weights"], label="\n".join(labels))
    compare_figure(blocks, hists, figure_weights, depth_bins, out["png"], out["pdf"])
    return out


def compare_figure(
    blocks: pd.DataFrame, hists: pd.DataFrame, weights: dict, bins: int, png: str, pdf: str
) -> list[str]:
    """The figure; ``weights["label"]`` holds one line per run (the title's lines under the first),
    so the runs' weights are never cut off at the figure's edge however many runs it compares."""
    import matplotlib.pyplot as plt

    from resstream.analysis.figure_marks import finish

    models = list(dict.fromkeys(blocks["model"]))
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    family = dict(zip(blocks["model"], blocks["family"]))
    title_lines = 1 + weights.get("label", "").count("\n") + 1
    title_inches = 0.2 * title_lines + 0.15  # 11 pt lines, and a margin
    fig = plt.figure(figsize=(max(10, 3.2 * bins), 7.4 + title_inches))
    grid = fig.add_gridspec(2, max(bins, 2))
    for k in range(bins):
        _depth_bin_histograms(fig.add_subplot(grid[0, k]), hists, k, bins, models, colors, family)
    half = max(bins, 2) // 2
    _per_block_curves(fig.add_subplot(grid[1, :half]), fig.add_subplot(grid[1, half:]), blocks, models, colors, family)
    fig.tight_layout(rect=(0, 0.03, 1, 1 - title_inches / fig.get_figheight()))
    return finish(fig, "Models compared: mix ratio by relative depth, scale invariance, spectrum", weights, png, pdf)


def _depth_bin_histograms(ax, hists: pd.DataFrame, k: int, bins: int, models: list[str], colors: dict, family: dict):
    """Top row, depth bin ``k``: each run's histogram of M over its blocks in the bin."""
    for model in models:
        h = hists[(hists["model"] == model) & (hists["depth_bin"] == k)]
        if h["count"].sum() == 0:
            continue
        edges = np.append(h["bin_lo"].to_numpy(), h["bin_hi"].to_numpy()[-1])
        ax.stairs(
            h["fraction"].to_numpy(),
            edges,
            color=colors[model],
            lw=1.6,
            label=f"{model} [{family[model]}] ({h['blocks'].iloc[0]}; n={int(h['count'].sum())})",
        )
    ax.axvline(1.0, color="k", ls=":", lw=0.8)
    ax.set_xlim(0, 5)
    ax.set_title(f"relative depth [{k / bins:.2f}, {(k + 1) / bins:.2f})", fontsize=9)
    ax.set_xlabel("mix ratio M (clamped at 5)", fontsize=8)
    if k == 0:
        ax.set_ylabel("fraction of channels", fontsize=8)
    if ax.get_legend_handles_labels()[0]:
        # headroom above the highest bar for the legend (a line per run), so it covers no bar
        top = float(hists[hists["depth_bin"] == k]["fraction"].max())
        ax.set_ylim(0, max(top, 0.05) * (1.15 + 0.12 * len(models)))
        ax.legend(fontsize=6, loc="upper right")
    else:
        ax.text(0.5, 0.5, "no studied block", ha="center", va="center", transform=ax.transAxes, fontsize=8)


def _per_block_curves(ax_s, ax_g, blocks: pd.DataFrame, models: list[str], colors: dict, family: dict):
    """Bottom row: % scale invariant (``ax_s``) and the spectrum (``ax_g``) of every block by its
    relative depth, a curve per run."""
    for model in models:
        b = blocks[blocks["model"] == model].sort_values("relative_depth")
        x = b["relative_depth"].to_numpy(dtype=float)
        ax_s.plot(
            x,
            b["pct_scale_invariant_all"].to_numpy(dtype=float),
            "o-",
            color=colors[model],
            label=f"{model} [{family[model]}]: all criteria",
        )
        ax_s.plot(
            x,
            b["pct_scale_invariant_nomix"].to_numpy(dtype=float),
            "s--",
            color=colors[model],
            alpha=0.6,
            label=f"{model}: without mix criterion",
        )
        for xi, name, y in zip(x, b["block"], b["pct_scale_invariant_all"].to_numpy(dtype=float)):
            # upright names: blocks of several runs at the same height and nearby depths stay legible
            ax_s.annotate(
                name,
                (xi, y),
                fontsize=5,
                xytext=(0, 4),
                textcoords="offset points",
                rotation=90,
                ha="center",
                va="bottom",
            )
        n = b["channels"].to_numpy(dtype=float)
        for group, marker in ((metrics.OVERWRITE, "v"), (metrics.MIX, "o"), (metrics.SKIP, "^")):
            ax_g.plot(
                x,
                b[group].to_numpy(dtype=float) / np.maximum(n, 1),
                marker + "-",
                color=colors[model],
                alpha=0.8,
                label=f"{model}: {group}",
            )
    ax_s.set_xlim(-0.02, 1.0)
    ax_s.set_ylim(-2, 125)  # room above 100 % for the upright block names
    ax_s.set_xlabel("relative depth (block index / blocks)", fontsize=8)
    ax_s.set_ylabel("% channels scale invariant", fontsize=8)
    ax_s.set_title("scale invariance per block", fontsize=9)
    ax_s.legend(fontsize=6)
    ax_g.set_xlim(-0.02, 1.0)
    ax_g.set_ylim(-0.02, 1.02)
    ax_g.set_xlabel("relative depth (block index / blocks)", fontsize=8)
    ax_g.set_ylabel("fraction of channels", fontsize=8)
    ax_g.set_title("spectrum per block: overwrite ▼, mix ●, skip ▲", fontsize=9)
    ax_g.legend(fontsize=6, ncol=max(1, len(models)))


def compare_job(job) -> dict:
    """Entry point of the ``compare_models`` job (its spec: :mod:`resstream.compare.jobs`): the
    comparison of ``params.runs`` in the folder of ``output.blocks``."""
    return compare_runs(dict(job.params.runs), os.path.dirname(job.output.blocks), job.params.depth_bins)
