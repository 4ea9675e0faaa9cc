"""Analysis outputs: where they live, the metric tables derived from the raw ones, what each figure
reads, and the summary.  (How tables are written and read back: :mod:`resstream.base.tables`.)

Layout under ``results``:

* ``analysis/{block}/{stimulus}_raw.csv``    measurements (``stimulus`` = fv | imagenet), one row
  per channel, a plain CSV whose last column ``weights`` names the weights; full provenance in
  ``..._raw.json`` beside it (see :func:`write_table`)
* ``analysis/{block}/{stimulus}_table.csv``  the same plus every derived metric (M, m, n, SM, pass
  flags, groups, status); provenance in ``..._table.json``
* ``figures/figN_*.png|pdf``                 Figs 1-8
* ``summary.json``                           counts, percentages, channel lists, weights identity

The tables are what figures and the summary read, so each figure can be redrawn without
re-measuring.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from resstream.analysis import metrics
from resstream.base.errors import ConfigError
from resstream.base.job_spec import by_block

# re-exported: the tables' names, where the analysis stage's callers have always found them
from resstream.base.tables import WEIGHTS_COLUMN as WEIGHTS_COLUMN
from resstream.base.tables import AnalysisError as AnalysisError
from resstream.base.tables import json_default as json_default
from resstream.base.tables import read_table as read_table
from resstream.base.tables import recorded_mix_factor as recorded_mix_factor
from resstream.base.tables import sidecar_json as sidecar_json
from resstream.base.tables import write_table as write_table
from resstream.model.weights_source import weights_source

STIMULI = ("fv", "imagenet")
# The analysis settings a metric table is derived with (config ``analysis:``; recorded in its sidecar).
TABLE_SETTINGS = ("mix_rules", "mix_factor", "scale_rule", "scale_sign", "a3_mean", "sm_rule")

FIGURES = {
    "fig1": "fig1_channel_grids",
    "fig2": "fig2_mix_histograms",
    "fig3": "fig3_weights_vs_mix",
    "fig4": "fig4_inhibition",
    "fig5": "fig5_scale_invariance",
    "fig6": "fig6_top_scale_metric",
    "fig7": "fig7_both_criteria",
    "fig8": "fig8_closest_mixes",
}
FIGURE_FORMATS = ("png", "pdf")
# What each figure reads besides the FV metric tables (rules/analysis.smk makes one rule per figure
# from this): imagenet = the ImageNet metric tables, fv_images = the centre-FV chunk folders,
# exemplars = the exemplar-grid folders, channel_fvs = the channel-FV chunk folders.  Figs 3 and 4
# read the tables of analysis.fig3_fig4_blocks only.
FIGURE_READS = {
    "fig1": ("fv_images", "exemplars", "channel_fvs"),
    "fig2": (),
    "fig3": (),
    "fig4": (),
    "fig5": (),
    "fig6": ("fv_images", "exemplars", "channel_fvs"),
    "fig7": ("imagenet", "fv_images", "exemplars"),
    "fig8": ("fv_images", "exemplars"),
}
FIG34 = ("fig3", "fig4")


def _check_stimulus(stimulus: str):
    if stimulus not in STIMULI:
        raise ValueError(f"stimulus '{stimulus}' unknown; one of {', '.join(STIMULI)}")


def raw_table_csv(results: str, block: str, stimulus: str) -> str:
    _check_stimulus(stimulus)
    return os.path.join(results, "analysis", block, f"{stimulus}_raw.csv")


def metric_table_csv(results: str, block: str, stimulus: str) -> str:
    _check_stimulus(stimulus)
    return os.path.join(results, "analysis", block, f"{stimulus}_table.csv")


def figure_file(results: str, fig: str, fmt: str) -> str:
    return os.path.join(results, "figures", f"{FIGURES[fig]}.{fmt}")


def summary_json(results: str) -> str:
    return os.path.join(results, "summary.json")


def read_summary(path: str) -> dict:
    """The summary :func:`build_summary` wrote (OSError where the file is missing, ValueError where
    it is not JSON: each reader says what that means for it)."""
    with open(path) as f:
        return json.load(f)


def table_settings(analysis_cfg: dict) -> dict:
    """The keyword arguments of :func:`resstream.analysis.metrics.metric_table` from the config's
    ``analysis`` section (``TABLE_SETTINGS``)."""
    return {k: float(analysis_cfg[k]) if k == "mix_factor" else analysis_cfg[k] for k in TABLE_SETTINGS}


def derive_table(raw_csv: str, out_csv: str, analysis_cfg: dict) -> pd.DataFrame:
    """Measurement table -> metric table, with the analysis settings recorded beside it."""
    raw, meta = read_table(raw_csv)
    table = metrics.metric_table(raw, **table_settings(analysis_cfg))
    meta = dict(meta)
    meta["analysis"] = {k: analysis_cfg[k] for k in TABLE_SETTINGS}
    write_table(table, out_csv, meta)
    return table


# --- summary ----------------------------------------------------------------------------------------


def block_summary(fv: pd.DataFrame, imnet: pd.DataFrame | None, mix_factor: float) -> dict:
    """Per-block numbers of the summary: spectrum counts, % scale invariant, channel lists."""
    ch = fv["channel"].to_numpy()
    n = len(fv)
    groups = fv["mix_group"].to_numpy()
    counts = {g: int((groups == g).sum()) for g in (metrics.OVERWRITE, metrics.MIX, metrics.SKIP)}
    counts["no_mix_ratio"] = int((groups == metrics.NO_GROUP).sum())
    out = {
        "channels": n,
        "spectrum_counts": counts,
        "spectrum_rule": f"overwrite M<=1/{mix_factor:g}, mix 1/{mix_factor:g}<M<{mix_factor:g}, skip M>={mix_factor:g}",
        "mix_rules_applied": {
            s: int((fv["mix_status"] == s).sum())
            for s in (metrics.MIX_RULE_SKIP, metrics.MIX_RULE_OVERWRITE, metrics.MIX_DEAD, metrics.MIX_NAN)
        },
        "fv_not_ok": int(sum(1 for s in fv["status"] if "fv_" in s)),
        **_scale_invariant({"fv": fv} if imnet is None else {"fv": fv, "imagenet": imnet}),
        "top_by_scale_metric": metrics.top_by_scale_metric(ch, fv["SM"], fv["pass_all"], k=3),
        "closest_to_one": metrics.closest_to_one(ch, fv["M"], k=3),
    }
    if imnet is not None:
        out["both_criteria_fig7"] = metrics.both_criteria(
            ch, fv["pass_all"], fv["SM"], imnet["channel"], imnet["pass_all"]
        )
    return out


def _scale_invariant(tables: dict[str, pd.DataFrame]) -> dict:
    """Channels passing all criteria and all but the mix criterion, per stimulus (``fv``,
    ``imagenet``): ``percent_scale_invariant`` of the table's channels and the same as
    ``scale_invariant_counts`` (for readers that show counts: the atlas index)."""
    counts, percents = {}, {}
    for stimulus, table in tables.items():
        for criteria, column in (("all_criteria", "pass_all"), ("without_mix_criterion", "pass_nomix")):
            key = f"{stimulus}_{criteria}"
            counts[key] = int(table[column].sum())
            percents[key] = _pct(counts[key], len(table))
    return {"percent_scale_invariant": percents, "scale_invariant_counts": counts}


def _pct(count, n) -> float | None:
    return None if n == 0 else round(100.0 * float(count) / n, 3)


def weight_and_inhibition_stats(fv: pd.DataFrame) -> dict:
    """Fig 3 and Fig 4 statistics of one block, from its FV table."""
    groups = fv["fig4_group"].to_numpy()
    over, skip = metrics.OVERWRITE, metrics.SKIP
    return {
        "fig3_spearman_M_vs_bn_gamma_abs": metrics.spearman(fv["M"], fv["bn_gamma_abs"]).as_dict(),
        "fig3_spearman_M_vs_conv_w_abs_mean": metrics.spearman(fv["M"], fv["conv_w_abs_mean"]).as_dict(),
        "fig4_in_mid_means": metrics.group_means(fv["in_mid"], groups),
        "fig4_in_mid_anova": metrics.anova(fv["in_mid"][groups == over], fv["in_mid"][groups == skip]).as_dict(),
        "fig4_rho_means": metrics.group_means(fv["rho_BI"], groups),
        "fig4_rho_anova": metrics.anova(fv["rho_BI"][groups == over], fv["rho_BI"][groups == skip]).as_dict(),
        "fig4_rho_undefined": int(np.isnan(fv["rho_BI"].to_numpy(dtype=float)).sum()),
    }


def build_summary(fv_tables: dict, imnet_tables: dict, out_path: str | None = None, fig34_blocks=None) -> dict:
    """``summary.json`` from the per-block metric tables (``{block: csv path}`` each)."""
    blocks, weights, settings = {}, None, None
    for block, path in fv_tables.items():
        fv, meta = read_table(path)
        imnet, imnet_meta = read_table(imnet_tables[block]) if block in imnet_tables else (None, {})
        if (
            weights
            and meta.get("weights")
            and meta["weights"].get("state_dict_sha256") != weights.get("state_dict_sha256")
        ):
            raise AnalysisError(
                f"{path} was measured with weights '{meta['weights'].get('label')}', other tables with "
                f"'{weights.get('label')}'. Fix: rerun the measurements of every block with one model.weights."
            )
        weights = weights or meta.get("weights")
        settings = settings or {k: meta.get(k) for k in ("analysis", "o_relu", "fv_hook")}
        entry = block_summary(fv, imnet, recorded_mix_factor(meta, path))
        entry["block_type"] = meta.get("block_type")
        entry["layers"] = meta.get("layers")
        entry["fv_settings"] = meta.get("fv_settings")
        if imnet is not None:
            # the re-run top-9 forwards against the stored dataset activations (same net, same images)
            entry["imagenet_max_abs_diff_vs_activations_h5"] = imnet_meta.get("max_abs_diff_vs_activations_h5")
        if fig34_blocks is None or block in fig34_blocks:
            entry["stats"] = weight_and_inhibition_stats(fv)
        blocks[block] = entry
    summary = {
        "weights": weights,
        "weights_source": weights_source(weights),
        "settings": settings,
        "blocks": blocks,
    }
    if out_path:
        os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
        with open(out_path, "w") as f:
            json.dump(summary, f, indent=2, default=json_default)
    return summary


def fig3_fig4_blocks(study, setting="default") -> list[str]:
    """Blocks of Figs 3 and 4.  Default: per stage except the network's last, the first studied
    simple block: 1.1, 2.1, 3.1 in resnet18, as in the paper (which leaves out the downsample blocks
    and the last stage for their overwrite skew), and the same three in every deeper torchvision
    ResNet, so the figures stay three columns wide however many blocks a stage has.  If that leaves
    nothing, every studied simple block, and failing that every studied block."""
    if setting != "default":
        missing = [b for b in setting if b not in study.study_blocks]
        if missing:
            raise ConfigError(
                f"analysis.fig3_fig4_blocks: block(s) {', '.join(missing)} not among study.blocks ({', '.join(study.study_blocks)})"
            )
        return [b for b in study.study_blocks if b in setting]
    last_stage = study.blocks[-1].stage
    simple = [b for b in study.study_blocks if not study.block_info(b).downsample]
    firsts: dict[str, str] = {}
    for b in simple:
        stage = study.block_info(b).stage
        if stage != last_stage:
            firsts.setdefault(stage, b)
    return list(firsts.values()) or simple or list(study.study_blocks)


def metric_table_job(job) -> pd.DataFrame:
    """Entry point of a ``metric_table`` job (its spec: :mod:`resstream.analysis.jobs`)."""
    return derive_table(job.input.csv, job.output.csv, job.params.analysis)


def summary_job(job) -> dict:
    """Entry point of the ``analysis_summary`` job: ``output.json`` from the blocks' metric tables."""
    blocks = job.params.blocks
    return build_summary(
        by_block(blocks, job.input.fv),
        by_block(blocks, job.input.imagenet),
        job.output.json,
        fig34_blocks=job.params.fig34_blocks,
    )
