"""Reproduction scorecard: this run's metric tables against the paper's claims.

The claims are data (``resstream/analysis/paper_claims.yaml``: figure, sentence, what to compare); each
gives one row (Fig 7 gives two, one per ``o_relu`` reading of A.3): the paper's value, this run's,
and a verdict:

* ``reproduced``: the run says what the paper says;
* ``partly``: some of it (named channels: some found, with the overlap, e.g. "6 of 9 channels
  found, precision 0.5"; statistics: the right sign without significance; shares: past the lower
  bar only);
* ``not reproduced``;
* ``not applicable``: the block or the named channels were not studied, or the number is undefined;
* ``not judged (why)``: every row of a run with random weights (``not judged (random weights)``: the
  numbers are shown, a verdict would mean nothing), and a claim about a whole block (a share, a
  top-k list, a ranking) when too few of the block's channels were studied
  (``not judged (3 of 64 channels studied)``; ``analysis.scorecard.studied_fraction``).

The paper's words "many", "only a few" and "dominated" are read as the thresholds of
``analysis.scorecard`` (by default at least 5 %, at most 5 %, at least 50 % with M < 1); the
scorecard's header prints them.

Outputs (rule ``paper_check``): ``paper_check.csv`` (the rows; provenance in its JSON sidecar),
``paper_check.md`` and ``paper_check.html`` (the same as text and as a page for the report; the
atlas index embeds it; templates/scorecard_*.html.j2 and scorecard.css).  With random weights the
title says that the comparison is meaningless.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import yaml
from markupsafe import Markup

from resstream.analysis import metrics
from resstream.analysis.summary import TABLE_SETTINGS, read_table, write_table
from resstream.base.job_spec import by_block
from resstream.base.outputs import write_text_atomic
from resstream.base.schema import default
from resstream.base.tables import recorded_mix_factor
from resstream.model.blocks import O_RELU_CHOICES
from resstream.model.weights_source import weights_source

CLAIMS_PATH = Path(__file__).with_name("paper_claims.yaml")
REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_APPLICABLE = "reproduced", "partly", "not reproduced", "not applicable"
NOT_JUDGED = "not judged"  # written "not judged (why)"
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_APPLICABLE, NOT_JUDGED)
COLUMNS = (
    "claim_id",
    "figure",
    "block",
    "claim",
    "o_relu",
    "a3_mean",
    "paper",
    "this_run",
    "verdict",
    "overlap",
    "rule",
    "sentence",
    "note",
)
# Checks whose claim is about a whole block (a share, a top-k list, a ranking, a statistic over its
# channels): judged only when enough of the block's channels were studied.
WHOLE_BLOCK_CHECKS = (
    "share",
    "less_skewed",
    "pass_share",
    "negative_share",
    "top_sm",
    "fig7",
    "fig8",
    "fig8_below",
    "spearman_negative",
    "overwrite_lower",
)
WORDS = {"many": "many_percent", "few": "few_percent", "dominated": "dominated_percent"}  # claims file -> setting
READINGS = (*WORDS.values(), "studied_fraction")  # the keys of analysis.scorecard

OUTPUTS = {"csv": "paper_check.csv", "md": "paper_check.md", "html": "paper_check.html"}
MEANINGLESS = "RANDOM WEIGHTS: the comparison with the paper is meaningless"


def readings_with_defaults(readings: dict | None) -> dict:
    """``analysis.scorecard`` with the schema's default for each key left out."""
    return {k: (readings or {}).get(k, default(f"analysis.scorecard.{k}")) for k in READINGS}


def scorecard_outputs(results: str) -> dict[str, str]:
    """``{csv, md, html}`` paths of the scorecard of a results folder."""
    return {key: os.path.join(results, name) for key, name in OUTPUTS.items()}


def load_claims(path=CLAIMS_PATH) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


@dataclass
class RunTables:
    """What the scorecard reads of a run: its per-block FV and ImageNet metric tables and settings."""

    fv: dict[str, pd.DataFrame]
    imagenet: dict[str, pd.DataFrame]
    o_relu: str
    mix_factor: float | None  # the factor f the tables' groups were made with (tables.recorded_mix_factor)
    analysis: dict = field(default_factory=dict)
    weights: dict | None = None
    alpha: float = 0.05
    block_channels: dict[str, int] = field(default_factory=dict)  # channels of each block (studied or not)
    readings: dict = field(default_factory=lambda: readings_with_defaults(None))  # analysis.scorecard
    lesions: pd.DataFrame | None = None  # the ablation stage's lesion_ratios.csv, when it ran

    @property
    def a3_mean(self) -> str:
        return self.analysis.get("a3_mean", default("analysis.a3_mean"))

    def imagenet_variant(self, block: str, o_relu: str, a3_mean: str | None = None) -> pd.DataFrame | None:
        """The ImageNet table of a block with O and I read as ``o_relu`` says and A.3's means as
        ``a3_mean`` says (None: this run's): this run's table, or the same top-9 images re-derived
        (from the other o_relu reading's columns; None if the table lacks them)."""
        table, a3_mean = self.imagenet.get(block), a3_mean or self.a3_mean
        if table is None or (o_relu == self.o_relu and a3_mean == self.a3_mean):
            return table
        cols = {f"{name}_{o_relu}": name for name in ("out_in", "out_mid", "in_in")} if o_relu != self.o_relu else {}
        if not set(cols) <= set(table.columns):
            return None
        settings = {k: self.analysis[k] for k in TABLE_SETTINGS if k in self.analysis}
        settings["a3_mean"] = a3_mean
        return metrics.metric_table(table.assign(**{name: table[col] for col, name in cols.items()}), **settings)

    def fig7(self, block: str, o_relu: str, a3_mean: str | None = None) -> list[int] | None:
        """Fig 7 of a block (FV and ImageNet criteria both, by FV SM); None without both tables."""
        fv, imagenet = self.fv.get(block), self.imagenet_variant(block, o_relu, a3_mean)
        if fv is None or imagenet is None:
            return None
        return metrics.both_criteria(fv["channel"], fv["pass_all"], fv["SM"], imagenet["channel"], imagenet["pass_all"])


# --- helpers ---------------------------------------------------------------------------------------


def paper_value(claim: dict, alpha: float) -> str:
    """What the paper says, as the scorecard's "paper" column shows it."""
    if "paper" in claim:
        return claim["paper"]
    if "expected" in claim:
        return claim["expected"]
    if "channels" in claim:
        return _listing(claim["channels"])
    if claim["check"] == "spearman_negative":
        return f"negative, p < {alpha:g}"
    if claim["check"] == "overwrite_lower":
        return "significantly lower" if claim["significant"] else "not significantly lower"
    return claim["claim"]


def quotes(claim: dict) -> list[str]:
    """The paper's words a claim rests on: one quote, or several from one passage."""
    return claim["sentence"] if isinstance(claim["sentence"], list) else [claim["sentence"]]


def percent(run: RunTables, bar) -> float:
    """A threshold of the claims file in percent: a number, or a word of the paper read as
    ``analysis.scorecard`` says ("many", "few", "dominated")."""
    return float(run.readings[WORDS[bar]]) if isinstance(bar, str) else float(bar)


def _row(claim: dict, run: RunTables, this_run: str, verdict: str, rule: str, overlap: str = "") -> dict:
    return {
        "claim": claim["claim"],
        "paper": paper_value(claim, run.alpha),
        "this_run": this_run,
        "verdict": verdict,
        "overlap": overlap,
        "rule": rule,
    }


def _na(claim: dict, run: RunTables, why: str, rule: str = "") -> dict:
    return _row(claim, run, why, NOT_APPLICABLE, rule)


def _listing(channels) -> str:
    return ", ".join(str(int(c)) for c in channels) if len(channels) else "none"


def _short_number(x, digits: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def _by_count(hits: int, total: int) -> str:
    """All -> reproduced, some -> partly, none -> not reproduced."""
    return REPRODUCED if hits == total else PARTLY if hits else NOT_REPRODUCED


def _named(claim: dict, df: pd.DataFrame) -> tuple[list[int], list[int]]:
    """The claim's channels this run studied, and those it did not."""
    studied = set(int(c) for c in df["channel"])
    named = [int(c) for c in claim["channels"]]
    return [c for c in named if c in studied], [c for c in named if c not in studied]


def _capped(verdict: str, missing: list[int]) -> str:
    """A claim about channels this run did not all study is at most partly reproduced."""
    return PARTLY if verdict == REPRODUCED and missing else verdict


def _not_studied(missing: list[int]) -> str:
    return f"; not studied: {_listing(missing)}" if missing else ""


def _found_among(claim: dict, run: RunTables, run_channels: list[int], what: str, rule: str) -> dict:
    """Verdict by how many of the named channels are in ``run_channels`` (the run's list)."""
    named, missing = _named(claim, run.fv[claim["block"]])
    if not named:
        return _na(claim, run, f"channel(s) {_listing(claim['channels'])} not studied", rule)
    hits = [c for c in named if c in run_channels]
    return _row(
        claim,
        run,
        f"{what}: {_listing(run_channels)}",
        _capped(_by_count(len(hits), len(named)), missing),
        rule,
        f"{len(hits)} of {len(named)} channels found{_not_studied(missing)}",
    )


# --- checks: one function per ``check`` of paper_claims.yaml ---------------------------------------


def check_group(claim, run: RunTables) -> list[dict]:
    rule = f"the channel's spectrum group (overwrite M <= 1/f, mix 1/f < M < f, skip M >= f; f = {run.mix_factor:g})"
    df = run.fv[claim["block"]]
    row = df[df["channel"] == claim["channel"]]
    if row.empty:
        return [_na(claim, run, f"channel {claim['channel']} not studied", rule)]
    group, m = row["mix_group"].iloc[0], float(row["M"].iloc[0])
    return [
        _row(
            claim,
            run,
            f"{group} (M = {_short_number(m)})",
            REPRODUCED if group == claim["expected"] else NOT_REPRODUCED,
            rule,
        )
    ]


def check_pass_all(claim, run: RunTables) -> list[dict]:
    df = run.fv[claim["block"]]
    passing = [int(c) for c in df.loc[df["pass_all"], "channel"] if int(c) in claim["channels"]]
    return [
        _found_among(
            claim,
            run,
            passing,
            "of these, passing all criteria (FVs)",
            "reproduced: every named channel passes all criteria; partly: some",
        )
    ]


def check_share(claim, run: RunTables) -> list[dict]:
    m = run.fv[claim["block"]]["M"].to_numpy(dtype=float)
    without = int((~np.isfinite(m)).sum())
    among = "channels with M" + (f" < {claim['within']:g}" if "within" in claim else "")
    m = m[np.isfinite(m) & (m < claim.get("within", np.inf))]  # the channels the claim is about
    reproduced_at = (
        percent(run, claim["reproduced_at"]) / 100
        if isinstance(claim["reproduced_at"], str)
        else claim["reproduced_at"]
    )
    rule = f"reproduced: a share of at least {reproduced_at:.0%}; partly: at least {claim['partly_at']:.0%}"
    if not len(m):
        return [_na(claim, run, f"no {among}", rule)]
    share = float(np.mean(m < claim["below"])) if "below" in claim else float(np.mean(m > claim["above"]))
    verdict = REPRODUCED if share >= reproduced_at else PARTLY if share >= claim["partly_at"] else NOT_REPRODUCED
    this_run = f"{share:.1%} of {len(m)} {among}" + (f" ({without} without M: dead or missing)" if without else "")
    return [_row(claim, run, this_run, verdict, rule)]


def _share_below_one(df) -> float:
    m = df["M"].to_numpy(dtype=float)
    m = m[np.isfinite(m)]
    return float(np.mean(m < 1.0)) if len(m) else np.nan


def check_less_skewed(claim, run: RunTables) -> list[dict]:
    rule = "reproduced: every simple block below every downsample block; partly: some"
    simple = [b for b in claim["blocks"] if b in run.fv]
    downsample = [b for b in claim["than"] if b in run.fv]
    if not simple or not downsample:
        return [_na(claim, run, "needs a studied simple block and a studied downsample block", rule)]
    share = {b: _share_below_one(run.fv[b]) for b in simple + downsample}
    lowest = min(share[b] for b in downsample)
    below = [b for b in simple if share[b] < lowest]
    shares = ", ".join(f"{b} {share[b]:.0%}" for b in simple + downsample)
    return [
        _row(
            claim,
            run,
            f"share of M < 1: {shares}",
            _by_count(len(below), len(simple)),
            rule,
            f"{len(below)} of {len(simple)} simple blocks below",
        )
    ]


def check_spearman_negative(claim, run: RunTables) -> list[dict]:
    rule = f"reproduced: rho < 0 and p < {run.alpha:g}; partly: rho < 0"
    df = run.fv[claim["block"]]
    r = metrics.spearman(df["M"], df[claim["column"]])
    if not np.isfinite(r.statistic):
        return [_na(claim, run, r.status, rule)]
    verdict = (REPRODUCED if r.pvalue < run.alpha else PARTLY) if r.statistic < 0 else NOT_REPRODUCED
    return [_row(claim, run, f"rho = {r.statistic:.3f}, p = {_short_number(r.pvalue, 2)} (n = {r.n})", verdict, rule)]


def check_overwrite_lower(claim, run: RunTables) -> list[dict]:
    rule = (
        f"reproduced: overwrite mean < skip mean with ANOVA p < {run.alpha:g}; partly: lower, not significant"
        if claim["significant"]
        else f"reproduced: not (lower with ANOVA p < {run.alpha:g})"
    )
    df = run.fv[claim["block"]]
    groups, y = df["fig4_group"].to_numpy(), df[claim["column"]].to_numpy(dtype=float)
    a = metrics.anova(y[groups == metrics.OVERWRITE], y[groups == metrics.SKIP])
    if not np.isfinite(a.statistic):
        return [_na(claim, run, a.status, rule)]
    means = metrics.group_means(y, groups)
    lower = means[metrics.OVERWRITE] < means[metrics.SKIP]
    significant = lower and a.pvalue < run.alpha
    if claim["significant"]:
        verdict = REPRODUCED if significant else PARTLY if lower else NOT_REPRODUCED
    else:
        verdict = NOT_REPRODUCED if significant else REPRODUCED
    this_run = (
        f"overwrite mean {_short_number(means[metrics.OVERWRITE])}, skip mean {_short_number(means[metrics.SKIP])}, "
        f"F = {_short_number(a.statistic)}, p = {_short_number(a.pvalue, 2)}"
    )
    return [_row(claim, run, this_run, verdict, rule)]


def check_negative_share(claim, run: RunTables) -> list[dict]:
    """Many channels have B(x_I) < 0, and many skip channels (Fig 4's groups: M >= 1) too."""
    many = percent(run, "many")
    rule = f"reproduced: at least {many:g} % of the channels and of the skip channels; partly: one of the two"
    df = run.fv[claim["block"]]
    values, skip = df[claim["column"]].to_numpy(dtype=float), (df["fig4_group"] == metrics.SKIP).to_numpy()
    shares = [_negative_percent(values), _negative_percent(values[skip])]
    this_run = (
        f"{_pct(shares[0])} of {len(values)} channels, {_pct(shares[1])} of {int(skip.sum())} skip channels "
        f"with {claim['column']} < 0"
    )
    if not np.isfinite(shares[0]):
        return [_na(claim, run, this_run, rule)]
    hits = sum(bool(x >= many) for x in shares)  # NaN (no skip channel) is no hit
    return [_row(claim, run, this_run, REPRODUCED if hits == 2 else PARTLY if hits else NOT_REPRODUCED, rule)]


def _negative_percent(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return 100.0 * float(np.mean(values < 0)) if len(values) else np.nan


def _pct(x: float) -> str:
    return f"{x:.1f} %" if np.isfinite(x) else "n/a"


def _pass_percent(df, flag: str) -> tuple[int, float]:
    count = int(df[flag].sum())
    return count, 100.0 * count / max(1, len(df))


def check_pass_share(claim, run: RunTables) -> list[dict]:
    count, pct = _pass_percent(run.fv[claim["block"]], claim["flag"])
    this_run = f"{count} of {len(run.fv[claim['block']])} channels ({pct:.1f} %)"
    if "at_most" in claim:
        bound = percent(run, claim["at_most"])
        if bound == 0:
            return [_row(claim, run, this_run, REPRODUCED if count == 0 else NOT_REPRODUCED, "reproduced: no channel")]
        verdict = REPRODUCED if pct <= bound else PARTLY if pct <= 2 * bound else NOT_REPRODUCED
        return [
            _row(claim, run, this_run, verdict, f"reproduced: at most {bound:g} %; partly: at most {2 * bound:g} %")
        ]
    at_least = percent(run, claim["at_least"])
    conditions = [pct >= at_least]
    neighbours = [b for b in claim.get("below", []) if b in run.fv]
    for b in neighbours:
        other = _pass_percent(run.fv[b], claim["flag"])[1]
        conditions.append(pct < other)
        this_run += f"; {b}: {other:.1f} %"
    if len(conditions) == 1:
        verdict = REPRODUCED if conditions[0] else PARTLY if count else NOT_REPRODUCED
        return [_row(claim, run, this_run, verdict, f"reproduced: at least {at_least:g} %; partly: some")]
    rule = f"reproduced: at least {at_least:g} % and below {', '.join(neighbours)}; partly: some of these"
    return [_row(claim, run, this_run, _by_count(sum(conditions), len(conditions)), rule)]


def check_top_sm(claim, run: RunTables) -> list[dict]:
    df = run.fv[claim["block"]]
    top = metrics.top_by_scale_metric(df["channel"], df["SM"], df["pass_all"], k=3)
    return [
        _found_among(
            claim, run, top, "top 3 by SM", "reproduced: every named channel in this run's top 3 by SM; partly: some"
        )
    ]


FIG7_RULE = (
    "reproduced: the same channels; partly: some found (precision: found / this run's list); not reproduced: none"
)


def _o_relu_readings(run: RunTables) -> list[str]:
    """This run's o_relu first, then the other."""
    return [run.o_relu] + [v for v in O_RELU_CHOICES if v != run.o_relu]


def _a3_mean_readings(run: RunTables) -> list[str]:
    """This run's a3_mean first, then the other."""
    return [run.a3_mean] + [v for v in metrics.A3_MEANS if v != run.a3_mean]


def check_fig7(claim, run: RunTables) -> list[dict]:
    """One row per reading of A.3: O and I pre- or post-ReLU (o_relu), ReLU of the mean or mean of ReLU
    (a3_mean); this run's readings first."""
    rows = []
    for o_relu in _o_relu_readings(run):
        for a3_mean in _a3_mean_readings(run):
            run_channels = run.fig7(claim["block"], o_relu, a3_mean)
            if claim["block"] not in run.fv:
                row = _na(claim, run, f"block {claim['block']} not studied", FIG7_RULE)
            elif run_channels is None:
                row = _na(claim, run, f"no ImageNet table with o_relu {o_relu} readings", FIG7_RULE)
            else:
                row = _fig7_row(claim, run, run_channels)
            row["claim"] += _reading(o_relu == run.o_relu, a3_mean == run.a3_mean)
            rows.append(dict(row, o_relu=o_relu, a3_mean=a3_mean))
    return rows


def _reading(same_o_relu: bool, same_a3_mean: bool) -> str:
    if same_o_relu and same_a3_mean:
        return " (this run's o_relu and a3_mean)"
    other = [
        what
        for what, same in (("O and I read the other way", same_o_relu), ("the other A.3 mean", same_a3_mean))
        if not same
    ]
    return f" (A.3 with {' and '.join(other)}, same top-9 images)"


def _fig7_row(claim, run: RunTables, run_channels: list[int]) -> dict:
    if not claim["channels"]:
        return _row(
            claim,
            run,
            _listing(run_channels),
            REPRODUCED if not run_channels else NOT_REPRODUCED,
            "reproduced: no channel, as the paper",
        )
    named, missing = _named(claim, run.fv[claim["block"]])
    if not named:
        return _na(claim, run, f"channel(s) {_listing(claim['channels'])} not studied", FIG7_RULE)
    hits = [c for c in named if c in run_channels]
    precision = f"{len(hits) / len(run_channels):.2g}" if run_channels else "n/a"
    verdict = _capped(REPRODUCED if set(run_channels) == set(named) else PARTLY if hits else NOT_REPRODUCED, missing)
    return _row(
        claim,
        run,
        _listing(run_channels),
        verdict,
        FIG7_RULE,
        f"{len(hits)} of {len(named)} channels found, precision {precision}{_not_studied(missing)}",
    )


def check_fig8(claim, run: RunTables) -> list[dict]:
    df = run.fv[claim["block"]]
    closest = metrics.closest_to_one(df["channel"], df["M"], k=3)
    row = _found_among(
        claim, run, closest, "3 closest to M = 1", "reproduced: the same 3 channels (any order); partly: some"
    )
    if closest == [int(c) for c in claim["channels"]]:
        row["overlap"] += ", same order"
    return [row]


def check_fig8_below(claim, run: RunTables) -> list[dict]:
    df = run.fv[claim["block"]]
    closest = metrics.closest_to_one(df["channel"], df["M"], k=3)
    rule = f"reproduced: all 3 below {claim['below']:g}; partly: some"
    if not closest:
        return [_na(claim, run, "no channel has a mix ratio", rule)]
    m = {c: float(df.loc[df["channel"] == c, "M"].iloc[0]) for c in closest}
    below = [c for c in closest if m[c] < claim["below"]]
    return [
        _row(
            claim,
            run,
            ", ".join(f"{c} (M = {_short_number(m[c])})" for c in closest),
            _by_count(len(below), len(closest)),
            rule,
        )
    ]


def _criteria_violations(df: pd.DataFrame, channels, stimulus: str, mix_factor: float) -> list[str]:
    out = []
    for c in channels:
        r = df[df["channel"] == c].iloc[0]
        bad = [f"M = {_short_number(r['M_raw'])}"] if not metrics.mix_ok([r["M_raw"]], mix_factor)[0] else []
        bad += [f"{k} = {_short_number(r[k])}" for k in ("m", "n") if not r[k] > 0]
        if bad:
            out.append(f"{c} ({stimulus}: {', '.join(bad)})")
    return out


def check_fig7_criteria(claim, run: RunTables) -> list[dict]:
    rule = "reproduced: every channel of this run's Fig 7 meets the criteria as the paper states them"
    listed, violations = 0, []
    for block in run.fv:
        run_channels = run.fig7(block, run.o_relu) or []
        listed += len(run_channels)
        for stimulus, df in (("FV", run.fv[block]), ("ImageNet", run.imagenet.get(block))):
            violations += (
                [f"{block} ch {v}" for v in _criteria_violations(df, run_channels, stimulus, run.mix_factor)]
                if run_channels
                else []
            )
    if not listed:
        return [_na(claim, run, "this run's Fig 7 lists no channel", rule)]
    this_run = f"{listed} channels; " + (
        f"{len(violations)} violation(s): {'; '.join(violations)}" if violations else "all meet them"
    )
    return [_row(claim, run, this_run, NOT_REPRODUCED if violations else REPRODUCED, rule)]


def check_in_fig7(claim, run: RunTables) -> list[dict]:
    run_channels = run.fig7(claim["block"], run.o_relu)
    rule = "reproduced: all in this run's Fig 7; partly: some"
    if run_channels is None:
        return [_na(claim, run, "no ImageNet table", rule)]
    return [_found_among(claim, run, run_channels, "Fig 7", rule)]


# --- the follow-up paper (a second source, from the ablation stage's lesions) ----------------------

LESION_RULE = (
    "reproduced: the accuracy ratio to the random lesions is below 1 at the largest scale-up and below the "
    "unscaled ratio (set, kind and path as the paper's)"
)


def followup_claims(claims: dict, run: RunTables) -> list[dict]:
    """The follow-up paper's claims, scored only when the ablation stage ran (its lesions given);
    the claims are paraphrases, so they carry no quote."""
    if run.lesions is None or "followup" not in claims:
        return []
    return [{"sentence": "", **claim} for claim in claims["followup"]["claims"]]


def _accuracies(by_scale) -> str:
    """ "63.8 % unscaled; 61.4, 59.4 % at s = 1.1, 1.2" from {scale: accuracy}."""
    up = {float(k): v for k, v in by_scale.items() if float(k) > 1.0}
    text = f"{_short_number(by_scale.get(1.0, np.nan), 4)} % unscaled" if 1.0 in by_scale else "unscaled not run"
    if up:
        text += f"; {', '.join(_short_number(v, 4) for v in up.values())} % at s = {', '.join(f'{k:g}' for k in up)}"
    return text


def check_lesion_scale(claim, run: RunTables) -> list[dict]:
    """The run's lesion of the claim's set, kind and path in its block (scales 1 and up) against
    the author's accuracies; judged on the ratio to the kept random lesions."""
    r = run.lesions
    pick = (
        r[
            (r["block"] == claim["block"])
            & (r["set"] == claim["set"])
            & (r["kind"] == claim["kind"])
            & (r["path"] == claim["path"])
            & (r["scale"] >= 1.0)
        ]
        .set_index("scale")
        .sort_index()
    )
    paper = f"{_accuracies(claim['accuracy'])} ({claim['set_size']} channels); ratio to random below 1 at s = 1.5, below unscaled"
    if pick.empty:
        what = f"{claim['set']} not lesioned ({claim['kind']} at {claim['path']}) in block {claim['block']}"
        return [dict(_na(claim, run, what, LESION_RULE), paper=paper)]
    ratios = pick["ratio"].dropna()
    found = f"{_accuracies(pick['accuracy'].to_dict())}; ratio to random: " + (
        ", ".join(f"{_short_number(v)} at s = {k:g}" for k, v in ratios.items()) or "no kept random trial"
    )
    up = ratios[ratios.index > 1.0]
    if 1.0 not in ratios.index or up.empty:
        return [
            dict(_na(claim, run, found + " (needs scale 1 and a scale-up with kept trials)", LESION_RULE), paper=paper)
        ]
    verdict = REPRODUCED if up.iloc[-1] < 1 and up.iloc[-1] < ratios[1.0] else NOT_REPRODUCED
    return [dict(_row(claim, run, found, verdict, LESION_RULE), paper=paper)]


CHECKS = {
    "group": check_group,
    "pass_all": check_pass_all,
    "share": check_share,
    "less_skewed": check_less_skewed,
    "spearman_negative": check_spearman_negative,
    "overwrite_lower": check_overwrite_lower,
    "pass_share": check_pass_share,
    "top_sm": check_top_sm,
    "fig7": check_fig7,
    "fig8": check_fig8,
    "fig8_below": check_fig8_below,
    "fig7_criteria": check_fig7_criteria,
    "in_fig7": check_in_fig7,
    "negative_share": check_negative_share,
    "lesion_scale": check_lesion_scale,
}


# --- the scorecard -----------------------------------------------------------------------------------


def score(claims: dict, run: RunTables) -> pd.DataFrame:
    """One row per claim (Fig 7: one per reading of A.3), in the order of the claims file."""
    rows = []
    for claim in claims["claims"] + followup_claims(claims, run):
        block = claim.get("block")
        unjudged = weights_unjudged(run.weights)
        if block is not None and block not in run.fv and claim["check"] != "fig7":  # fig7: a row per reading
            claim_rows = [_na(claim, run, f"block {block} not studied")]
        else:
            claim_rows = CHECKS[claim["check"]](claim, run)
            unjudged = unjudged or unjudged_because(claim, run)
        for row in claim_rows:
            if unjudged and (row["verdict"] != NOT_APPLICABLE or not is_judged(run.weights)):
                row["verdict"] = f"{NOT_JUDGED} ({unjudged})"
            rows.append(
                {
                    "claim_id": claim["id"],
                    "figure": claim["figure"],
                    "block": block or "all",
                    "o_relu": row.pop("o_relu", run.o_relu),
                    "a3_mean": row.pop("a3_mean", run.a3_mean),
                    "sentence": " [...] ".join(quotes(claim)),
                    "note": claim.get("note", ""),
                    **row,
                }
            )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def weights_unjudged(weights: dict | None) -> str:
    """Why no claim of a run is judged ("random weights"), or "" for trained weights (pretrained or
    a custom checkpoint, judged with its label)."""
    if not weights:
        return "weights not recorded"
    return "random weights" if weights_source(weights) == "random" else ""


def is_judged(weights: dict | None) -> bool:
    return not weights_unjudged(weights)


def unjudged_because(claim: dict, run: RunTables) -> str:
    """Why a whole-block claim cannot be judged on this run ("3 of 64 channels studied"), or ""."""
    if claim["check"] not in WHOLE_BLOCK_CHECKS:
        return ""
    blocks = [claim["block"]] if "block" in claim else [*claim.get("blocks", []), *claim.get("than", [])]
    if isinstance(claim.get("below"), list):  # the neighbour blocks a share is compared with
        blocks += claim["below"]
    for block in (b for b in blocks if b in run.fv):
        studied, total = len(run.fv[block]), run.block_channels.get(block)
        where = "" if block == claim.get("block") else f" in {block}"
        if total is None:
            return f"the channel count of block {block} was not given"
        if studied < run.readings["studied_fraction"] * total:
            return f"{studied} of {total} channels studied{where}"
    return ""


def title(weights: dict | None) -> str:
    if is_judged(weights):
        return "Reproduction scorecard"
    return f"Reproduction scorecard — {MEANINGLESS}"


def verdict_kind(verdict: str) -> str:
    """The verdict word of a row ("not judged (random weights)" -> "not judged")."""
    return NOT_JUDGED if verdict.startswith(NOT_JUDGED) else verdict


def verdict_counts(df: pd.DataFrame) -> dict[str, int]:
    kinds = df["verdict"].map(verdict_kind)
    return {v: int((kinds == v).sum()) for v in VERDICTS}


def read_run(
    fv_csvs: dict,
    imagenet_csvs: dict,
    alpha: float = 0.05,
    block_channels: dict | None = None,
    readings: dict | None = None,
    lesions_csv: str | None = None,
) -> RunTables:
    """The tables of a run (``{block: csv}`` each; ImageNet tables may be missing); ``block_channels``:
    ``{block: channels}`` of the model; ``readings``: the config's ``analysis.scorecard``;
    ``lesions_csv``: the ablation stage's ``lesion_ratios.csv`` (the follow-up paper's rows), if it ran."""
    fv, imagenet, meta, factors = {}, {}, {}, []
    for block, path in fv_csvs.items():
        fv[block], block_meta = read_table(path)
        factors.append(recorded_mix_factor(block_meta, path))  # every table must record it
        meta = meta or block_meta
    for block, path in imagenet_csvs.items():
        imagenet[block] = read_table(path)[0]
    return RunTables(
        fv=fv,
        imagenet=imagenet,
        o_relu=meta.get("o_relu", default("study.o_relu")),
        mix_factor=factors[0] if factors else None,
        analysis=meta.get("analysis") or {},
        weights=meta.get("weights"),
        alpha=alpha,
        block_channels=dict(block_channels or {}),
        readings=readings_with_defaults(readings),
        lesions=read_table(lesions_csv)[0] if lesions_csv else None,
    )


def write_scorecard(
    fv_csvs: dict,
    imagenet_csvs: dict,
    outputs: dict,
    claims_path=CLAIMS_PATH,
    block_channels: dict | None = None,
    readings: dict | None = None,
    lesions_csv: str | None = None,
) -> pd.DataFrame:
    """Score a run's tables against the claims; write ``outputs`` (keys csv, md, html).
    ``block_channels`` (``{block: channels}``) lets claims about whole blocks be judged;
    ``readings`` is the config's ``analysis.scorecard`` (the schema's defaults where left out)."""
    claims = load_claims(claims_path)
    run = read_run(fv_csvs, imagenet_csvs, float(claims.get("alpha", 0.05)), block_channels, readings, lesions_csv)
    df = score(claims, run)
    meta = {
        "weights": run.weights,
        "title": title(run.weights),
        "paper": claims["paper"],
        "o_relu": run.o_relu,
        "analysis": run.analysis,
        "readings": run.readings,
        "alpha": run.alpha,
        "verdicts": verdict_counts(df),
        "claims": str(claims_path),
        "second_source": claims["followup"]["paper"] if followup_claims(claims, run) else "",
    }
    write_table(df, outputs["csv"], meta)
    write_text_atomic(outputs["md"], markdown(df, meta))
    write_text_atomic(outputs["html"], html_page(df, meta))
    return df


def _settings_line(meta: dict) -> str:
    a = meta.get("analysis") or {}
    parts = [
        f"o_relu {meta.get('o_relu')} and a3_mean {a.get('a3_mean', default('analysis.a3_mean'))} "
        "(Fig 7 rows show every reading of A.3)"
    ]
    parts += [f"{k} {a[k]}" for k in ("mix_factor", "scale_rule", "scale_sign", "sm_rule", "mix_rules") if k in a]
    return "; ".join(parts) + f"; significance p < {meta.get('alpha', 0.05):g}"


def readings_line(readings: dict) -> str:
    """The project's readings of the paper's words, as the header prints them."""
    r = readings_with_defaults(readings)
    return (
        f'"many" channels: at least {r["many_percent"]:g} % of the block; "only a few": at most {r["few_percent"]:g} %; '
        f'"dominated by overwrite": at least {r["dominated_percent"]:g} % with M < 1; claims about a whole block are '
        f"judged when at least {100 * r['studied_fraction']:g} % of its channels were studied"
    )


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(df: pd.DataFrame, meta: dict) -> str:
    counts = meta["verdicts"]
    weights = (meta.get("weights") or {}).get("label", "unknown weights")
    lines = [
        f"# {meta['title']}",
        "",
        f"{meta['paper']} against this run. Weights: {weights}.",
        "",
        f"Settings: {_settings_line(meta)}.",
        "",
        f"Readings of the paper's words: {readings_line(meta.get('readings'))}.",
        "",
        *([f"Second source: {meta['second_source']}: {SECOND_SOURCE_LINE}.", ""] if meta.get("second_source") else []),
        "Verdicts: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".",
        "",
        "| figure | block | claim | o_relu | a3_mean | paper | this run | verdict | overlap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in df.fillna("").itertuples(index=False):
        cells = (r.figure, r.block, r.claim, r.o_relu, r.a3_mean, r.paper, r.this_run, f"**{r.verdict}**", r.overlap)
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    lines += ["", "## Rules and sources", ""]
    for r in df.drop_duplicates("claim_id").itertuples(index=False):
        note = f" Note: {_md_cell(r.note)}." if r.note else ""
        quote = f' Paper: "{_md_cell(r.sentence)}"' if r.sentence else ""  # the follow-up's claims: no quote
        lines.append(f"- `{r.claim_id}` ({r.figure}): {_md_cell(r.rule)}.{quote}{note}")
    return "\n".join(lines) + "\n"


SECOND_SOURCE_LINE = (
    "its rows (figure \"Follow-up\") show the author's numbers in the paper column and this run's "
    "lesions (the ablation stage) beside them"
)

# The page's templates and stylesheet (package data, autoescaped); their names stay spelled out
# here so that editing one reruns the jobs that render them (the code fingerprint).
TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("resstream.analysis", "templates"), autoescape=True)
HTML_FRAGMENT = TEMPLATES.get_template("scorecard_fragment.html.j2")
HTML_PAGE = TEMPLATES.get_template("scorecard_page.html.j2")
SCORECARD_CSS = resources.files("resstream.analysis").joinpath("templates", "scorecard.css").read_text(encoding="utf-8")


def html_fragment(df: pd.DataFrame, meta: dict) -> str:
    """The scorecard as an HTML section (autoescaped), for its own page and the atlas index."""
    return HTML_FRAGMENT.render(
        meta=meta,
        rows=df.fillna("").to_dict("records"),
        settings=_settings_line(meta),
        readings=readings_line(meta.get("readings")),
        kind=verdict_kind,
        second_source_line=SECOND_SOURCE_LINE,
    )


def html_page(df: pd.DataFrame, meta: dict) -> str:
    weights = meta.get("weights") or {}
    return HTML_PAGE.render(
        meta=meta,
        css=Markup(SCORECARD_CSS),
        fragment=Markup(html_fragment(df, meta)),
        trained=is_judged(weights),
        meaningless=MEANINGLESS,
        weights=weights.get("label", "unknown"),
    )


def paper_check_job(job) -> pd.DataFrame:
    """Entry point of the ``paper_check`` job (its spec: :mod:`resstream.analysis.jobs`)."""
    params, out = job.params, job.output
    return write_scorecard(
        by_block(params.blocks, job.input.fv),
        by_block(params.blocks, job.input.imagenet),
        {"csv": out.csv, "md": out.md, "html": out.html},
        job.input.claims,
        block_channels=params.block_channels,
        readings=params.readings,
        lesions_csv=job.input.lesions[0] if job.input.lesions else None,
    )
