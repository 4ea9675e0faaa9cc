"""The paper's per-channel metrics as pure functions on numpy arrays (docs/method.md).

Every function takes per-channel arrays (one entry per channel of a block) and returns arrays of
the same length, plus a *status* array of strings where an input could not give a meaningful value.
Nothing here raises on bad numbers: the author's code aborted on a dead unit (``assert``) and
crashed or silently produced NaN elsewhere; here every such case is a recorded status.

Names follow the measurements' variables (docs/method.md#measurements): for one channel c of a block,

* ``out_in = O_c(X_I)``, ``out_mid = O_c(X_B)``, ``in_in = I_c(X_I)``, ``mid_mid = B_c(X_B)``,
  ``in_mid = B_c(X_I)``, where X_I, X_B are the centre-neuron FVs of I_c and B_c (or, in the
  ImageNet variant, the top-9 images of I_c and B_c, all values then being means over the 9).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# re-exported: metrics is where callers find every statistic of the paper
from resstream.analysis.stats import STAT_OK as STAT_OK
from resstream.analysis.stats import StatResult as StatResult
from resstream.analysis.stats import as_f64 as as_f64
from resstream.analysis.stats import json_float as json_float
from resstream.analysis.stats import relu_mean as relu_mean
from resstream.analysis.stats import spearman as spearman
from resstream.analysis.stats import spearman_where_input_positive as spearman_where_input_positive
from resstream.base.schema import default

# --- mix ratio (docs/method.md#mix-ratio) --------------------------------------------------------------------------

M_SKIP_RULE_VALUE = 10.0  # out_mid <= 0: the block feature cannot drive O, i.e. a skip
M_OVERWRITE_RULE_VALUE = 0.0  # out_in <= 0: the input feature cannot drive O, i.e. an overwrite
M_CLAMP = 5.0  # the paper clamps M to 5 for every plot and histogram
HIST_BINS = np.arange(0, 5.25, 0.25)  # Fig 2: 20 bins on [0, 5], the last one closed

MIX_OK = "ok"
MIX_RULE_SKIP = "mix_rule:out_mid<=0"  # M = 10 (-> 5), the paper's "B_c negative -> 5"
MIX_RULE_OVERWRITE = "mix_rule:out_in<=0"  # M = 0, rule not stated in the paper (code only)
MIX_DEAD = "dead"  # both out_in < 0 and out_mid < 0: the author's assert ("rerun FZ")
MIX_NAN = "nan"  # an input is NaN (e.g. a missing or NaN FV)

# Groups of the skip-overwrite spectrum.  Fig 1's three groups use the same tolerance as Eq 2:
# "mix" is an M close to 1 within the factor f (1/f < M < f, the scale criterion's mix_ok),
# "skip" is M >= f (the input dominates O) and "overwrite" is M <= 1/f (the block dominates O).
# Fig 4 splits in two, exactly as the author's code: skip is M >= 1, overwrite is M < 1.
SKIP, MIX, OVERWRITE, NO_GROUP = "skip", "mix", "overwrite", "none"


@dataclass(frozen=True)
class MixRatio:
    raw: np.ndarray  # unclamped M (10 / 0 by rule; NaN for dead or NaN inputs): the scale criteria use it
    clamped: np.ndarray  # min(M, 5): histograms, plots and groups
    status: np.ndarray  # MIX_OK | MIX_RULE_SKIP | MIX_RULE_OVERWRITE | MIX_DEAD | MIX_NAN


_f64 = as_f64  # (analysis/stats.py holds it: Spearman's rho is recorded by the measurements)


def mix_ratio(out_in, out_mid) -> MixRatio:
    """M = O_c(X_I) / O_c(X_B) with the author's rules (docs/method.md#mix-ratio, ``mix_rules: code``).

    In the author's order: both negative -> dead (the assert, recorded instead of aborting);
    out_mid <= 0 -> 10 (a skip); else out_in <= 0 -> 0 (an overwrite); else the ratio.
    """
    out_in, out_mid = np.broadcast_arrays(_f64(out_in), _f64(out_mid))
    raw = np.full(out_in.shape, np.nan)
    status = np.full(out_in.shape, MIX_OK, dtype=object)
    nan = np.isnan(out_in) | np.isnan(out_mid)
    dead = ~nan & (out_in < 0) & (out_mid < 0)
    skip = ~nan & ~dead & (out_mid <= 0)
    overwrite = ~nan & ~dead & ~skip & (out_in <= 0)
    ratio = ~(nan | dead | skip | overwrite)
    raw[skip] = M_SKIP_RULE_VALUE
    raw[overwrite] = M_OVERWRITE_RULE_VALUE
    raw[ratio] = out_in[ratio] / out_mid[ratio]
    status[nan] = MIX_NAN
    status[dead] = MIX_DEAD
    status[skip] = MIX_RULE_SKIP
    status[overwrite] = MIX_RULE_OVERWRITE
    return MixRatio(raw=raw, clamped=np.minimum(raw, M_CLAMP), status=status)


def mix_ok(m_raw, mix_factor: float) -> np.ndarray:
    """Eq 2 with the code's factor: 1/f < M < f (strict both sides); NaN is never ok."""
    m_raw = _f64(m_raw)
    with np.errstate(invalid="ignore"):
        return (m_raw > 1.0 / mix_factor) & (m_raw < mix_factor)


def mix_group(m, mix_factor: float) -> np.ndarray:
    """Fig 1's spectrum: skip (M >= f), mix (1/f < M < f), overwrite (M <= 1/f); NaN -> none."""
    m = _f64(m)
    out = np.full(m.shape, NO_GROUP, dtype=object)
    with np.errstate(invalid="ignore"):
        out[m >= mix_factor] = SKIP
        out[m <= 1.0 / mix_factor] = OVERWRITE
    out[mix_ok(m, mix_factor)] = MIX
    return out


def skip_overwrite_group(m) -> np.ndarray:
    """Fig 4's two groups as the author's code splits them: skip M >= 1, overwrite M < 1."""
    m = _f64(m)
    out = np.full(m.shape, NO_GROUP, dtype=object)
    with np.errstate(invalid="ignore"):
        out[m >= 1.0] = SKIP
        out[m < 1.0] = OVERWRITE
    return out


def mix_histogram(m_clamped) -> tuple[np.ndarray, np.ndarray, int]:
    """Fig 2: ``(counts[20], edges[21], n_dropped)``; NaN M (dead units) are dropped and counted."""
    m = _f64(m_clamped)
    finite = np.isfinite(m)
    counts, edges = np.histogram(m[finite], bins=HIST_BINS)
    return counts, edges, int((~finite).sum())


# --- scale invariance (docs/method.md#scale-invariance) -------------------------------------------------------------------

SCALE_OK = "ok"
SCALE_BAD_MID_MID = "scale:mid_mid<=0"  # m's normaliser B_c(X_B) is not positive
SCALE_BAD_IN_IN = "scale:in_in<=0"  # n's normaliser I_c(X_I) is not positive
SCALE_NAN = "scale:nan"  # an input is NaN

SCALE_RULES = ("paper", "mid_only")
SCALE_SIGNS = ("paper", "code")  # Eqs 3-4 on the raw deltas | on the normalised ones (author's code)


A3_MEANS = (
    "paper",
    "code",
)  # over a stimuli set: ReLU of the mean (Eq 3 as A.3 writes it) | mean of ReLU (author's code)
SM_RULES = ("paper", "code")  # the scaled term of Eqs 3-5: raw (as written) | ReLU'd (author's code)


@dataclass(frozen=True)
class ScaleDeltas:
    m_delta: np.ndarray  # B(S X_I) - relu B(X_I)          (Eq 3's raw delta; the terms per a3_mean, sm_rule)
    n_delta: np.ndarray  # I(S^-1 X_B) - relu I(X_B)       (Eq 4's raw delta)
    m: np.ndarray  # m_delta / mid_mid                         (normalised, Eq 5's first term)
    n: np.ndarray  # n_delta / in_in                           (normalised, Eq 5's second term)
    status: np.ndarray  # ";"-joined SCALE_* flags, "ok" when both normalisers are positive


def _check_choice(key: str, value: str, choices: tuple):
    if value not in choices:
        raise ValueError(f"analysis.{key} '{value}' unknown; one of {', '.join(choices)}")


def unscaled_term(mean, mean_of_relu, a3_mean: str) -> np.ndarray:
    """The ReLU'd unscaled reading of Eqs 3-4 over a unit's stimuli: ``paper`` ReLU of the mean
    (A.3 replaces each activation with the mean over the 9 images, then Eq 3 applies its ReLU),
    ``code`` the mean of ReLU (the author's code).  One stimulus (an FV): the two are equal."""
    _check_choice("a3_mean", a3_mean, A3_MEANS)
    return np.maximum(_f64(mean), 0.0) if a3_mean == "paper" else _f64(mean_of_relu)  # NaN stays NaN


def scaled_term(mean, mean_of_relu, a3_mean: str, sm_rule: str) -> np.ndarray:
    """The scaled reading of Eqs 3-5: ``sm_rule`` paper leaves it raw as the equations do; ``code``
    applies ReLU as the author's code does (placed as ``a3_mean`` says).  The sign test on an FV is
    the same either way (relu a > relu b <=> a > relu b); only a failing channel's m, n and SM differ."""
    _check_choice("sm_rule", sm_rule, SM_RULES)
    return _f64(mean) if sm_rule == "paper" else unscaled_term(mean, mean_of_relu, a3_mean)


def scale_deltas(scaled_b, unscaled_b, mid_mid, scaled_i, unscaled_i, in_in) -> ScaleDeltas:
    """docs/method.md#scale-invariance: the raw deltas of Eqs 3-4 (scaled minus unscaled reading, see :func:`scaled_term`
    and :func:`unscaled_term`) and m, n = those deltas over the raw (not ReLU'd) denominators.

    A non-positive normaliser keeps the raw division as the author's code does (its sign flips the
    normalised delta; 0 gives NaN, not inf) and is recorded in ``status``.
    """
    a, b, mm, c, d, ii = np.broadcast_arrays(
        *(_f64(v) for v in (scaled_b, unscaled_b, mid_mid, scaled_i, unscaled_i, in_in))
    )
    m_delta, n_delta = a - b, c - d  # NaN in, NaN out
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(mm != 0, m_delta / np.where(mm != 0, mm, 1.0), np.nan)
        n = np.where(ii != 0, n_delta / np.where(ii != 0, ii, 1.0), np.nan)
    nan = np.isnan(a) | np.isnan(b) | np.isnan(mm) | np.isnan(c) | np.isnan(d) | np.isnan(ii)
    status = []
    for i in range(len(m)):
        flags = []
        if nan[i]:
            flags.append(SCALE_NAN)
        if not np.isnan(mm[i]) and mm[i] <= 0:
            flags.append(SCALE_BAD_MID_MID)
        if not np.isnan(ii[i]) and ii[i] <= 0:
            flags.append(SCALE_BAD_IN_IN)
        status.append(";".join(flags) if flags else SCALE_OK)
    return ScaleDeltas(m_delta=m_delta, n_delta=n_delta, m=m, n=n, status=np.array(status, dtype=object))


def table_scale_deltas(t, a3_mean: str, sm_rule: str) -> ScaleDeltas:
    """:func:`scale_deltas` of a measurement table's columns under the two readings."""
    return scale_deltas(
        scaled_term(t["B_of_SxI"], t["relu_B_of_SxI"], a3_mean, sm_rule),
        unscaled_term(t["in_mid"], t["relu_B_of_xI"], a3_mean),
        t["mid_mid"],
        scaled_term(t["I_of_SinvxB"], t["relu_I_of_SinvxB"], a3_mean, sm_rule),
        unscaled_term(t["I_of_xB"], t["relu_I_of_xB"], a3_mean),
        t["in_in"],
    )


def _check_scale_rule(scale_rule: str):
    _check_choice("scale_rule", scale_rule, SCALE_RULES)


def _check_scale_sign(scale_sign: str):
    _check_choice("scale_sign", scale_sign, SCALE_SIGNS)


def scale_metric(m, n, scale_rule: str) -> np.ndarray:
    """SM (Eq 5): m + n; ``mid_only`` (the author's later code, docs/method.md#the-paper-and-the-authors-code) ranks by m alone."""
    _check_scale_rule(scale_rule)
    m, n = np.broadcast_arrays(_f64(m), _f64(n))
    return m + n if scale_rule == "paper" else m.copy()


def scale_ok(deltas: ScaleDeltas, scale_rule: str, scale_sign: str) -> np.ndarray:
    """Eqs 3-4: is each scaled reading above the unscaled one?

    ``scale_sign``: ``paper`` tests the raw deltas (``m_delta > 0``, ``n_delta > 0``) as Eqs 3-4
    write them, whatever the sign of the denominators; ``code`` tests the normalised m and n as the
    author's code does (a non-positive denominator flips the sign; a zero one gives NaN, which
    fails).  ``scale_rule``: ``paper`` needs both, ``mid_only`` Eq 3 alone.  A NaN never passes.
    """
    _check_scale_rule(scale_rule)
    _check_scale_sign(scale_sign)
    m_test, n_test = (deltas.m_delta, deltas.n_delta) if scale_sign == "paper" else (deltas.m, deltas.n)
    with np.errstate(invalid="ignore"):
        ok = _f64(m_test) > 0
        if scale_rule == "paper":
            ok &= _f64(n_test) > 0
    return ok


def pass_flags(m_raw, deltas: ScaleDeltas, mix_factor: float, scale_rule: str, scale_sign: str):
    """``(pass_all, pass_nomix)``: the scale criteria (:func:`scale_ok`) with and without the mix
    criterion (Eq 2, on the unclamped M)."""
    ok = scale_ok(deltas, scale_rule, scale_sign)
    return ok & mix_ok(m_raw, mix_factor), ok.copy()


def top_by_scale_metric(channels, sm, passing, k: int = 3) -> list[int]:
    """Channels passing, ordered by SM descending (ties: lower channel first); the top k.

    ``k=None`` returns all passing channels in order (Fig 7 ordering).
    """
    channels, sm, passing = np.asarray(channels), _f64(sm), np.asarray(passing, dtype=bool)
    keep = passing & np.isfinite(sm)
    order = np.lexsort((channels[keep], -sm[keep]))
    out = [int(c) for c in channels[keep][order]]
    return out if k is None else out[:k]


def closest_to_one(channels, m, k: int = 3) -> list[int]:
    """Fig 8: ``topk(|M - 1|, k, largest=False)``, closest first; NaN excluded, ties lower channel first."""
    channels, m = np.asarray(channels), _f64(m)
    keep = np.isfinite(m)
    d = np.abs(m[keep] - 1.0)
    order = np.lexsort((channels[keep], d))
    return [int(c) for c in channels[keep][order][:k]]


def both_criteria(fv_channels, fv_pass, fv_sm, imnet_channels, imnet_pass) -> list[int]:
    """Fig 7: channels passing pass_all for the FVs and for ImageNet, ordered by the FV SM."""
    imnet_ok = {int(c) for c, p in zip(np.asarray(imnet_channels), np.asarray(imnet_pass, dtype=bool)) if p}
    fv_channels = np.asarray(fv_channels)
    both = np.array([int(c) in imnet_ok for c in fv_channels], dtype=bool) & np.asarray(fv_pass, dtype=bool)
    return top_by_scale_metric(fv_channels, fv_sm, both, k=None)


# --- statistics (Figs 3, 4; Spearman's rho in measure_stats) -------------------------------------


def anova(*groups) -> StatResult:
    """One-way ANOVA (``f_oneway``) over the groups' finite values; NaN with a status when undefined."""
    clean = [_f64(g)[np.isfinite(_f64(g))] for g in groups]
    dropped = sum(len(_f64(g)) - len(c) for g, c in zip(groups, clean))
    note = f" ({dropped} non-finite values dropped)" if dropped else ""
    n = sum(len(c) for c in clean)
    sizes = [len(c) for c in clean]
    if any(s < 2 for s in sizes):
        return StatResult(np.nan, np.nan, n, f"a group has fewer than 2 values (sizes {sizes}){note}")
    if all(np.all(c == c[0]) for c in clean):
        return StatResult(np.nan, np.nan, n, f"no variance within the groups, F undefined{note}")
    from scipy import stats  # here, not at the top: scipy.stats takes 0.6 s to import, and the Snakefile's parse
    # reads this package's tables and paths, never a statistic

    res = stats.f_oneway(*clean)
    if not np.isfinite(res.statistic):
        return StatResult(np.nan, np.nan, n, f"F undefined (constant values){note}")
    return StatResult(float(res.statistic), float(res.pvalue), n, (STAT_OK + note) if note else STAT_OK)


def group_means(values, groups) -> dict[str, float | None]:
    """Mean of the finite values of each group (None for an empty group)."""
    values, groups = _f64(values), np.asarray(groups, dtype=object)
    out = {}
    for g in (OVERWRITE, MIX, SKIP):
        v = values[(groups == g) & np.isfinite(values)]
        if (groups == g).any():
            out[g] = float(v.mean()) if len(v) else None
    return out


# --- the per-block table ---------------------------------------------------------------------------

MIX_RULES = ("code",)

# Columns a measurement must provide (per channel; means over the stimuli set for ImageNet).
RAW_COLUMNS = (
    "out_in",  # O_c(X_I)
    "out_mid",  # O_c(X_B)
    "in_in",  # I_c(X_I)
    "mid_mid",  # B_c(X_B)
    "in_mid",  # B_c(X_I)
    "I_of_xB",  # I_c(X_B)
    "B_of_SxI",  # B_c(S X_I)
    "I_of_SinvxB",  # I_c(S^-1 X_B)
    "relu_B_of_xI",  # mean relu B_c(X_I)
    "relu_B_of_SxI",  # mean relu B_c(S X_I)
    "relu_I_of_xB",  # mean relu I_c(X_B)
    "relu_I_of_SinvxB",  # mean relu I_c(S^-1 X_B)
)


def metric_table(
    raw,
    mix_factor: float = default("analysis.mix_factor"),
    scale_rule: str = default("analysis.scale_rule"),
    mix_rules: str = default("analysis.mix_rules"),
    scale_sign: str = default("analysis.scale_sign"),
    a3_mean: str = default("analysis.a3_mean"),
    sm_rule: str = default("analysis.sm_rule"),
):
    """Add every derived per-channel quantity to a measurement table (a pandas DataFrame); the
    settings default to the config schema's (``analysis.*``).

    Adds M_raw, M (clamped), mix_status, mix_group (Fig 1), fig4_group, m_delta, n_delta, m, n,
    scale_status, SM, pass_all, pass_nomix, and ``status``: "ok" or the ";"-joined list of
    everything not ok about the channel (FV status, mix rule applied, dead unit, non-positive
    normaliser, undefined rho).
    """
    _check_choice("mix_rules", mix_rules, MIX_RULES)
    missing = [c for c in RAW_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(
            f"measurement table lacks column(s) {', '.join(missing)}: it was not written by resstream.analysis.measure; rerun the measurement"
        )
    t = raw.copy()
    mix = mix_ratio(t["out_in"].to_numpy(), t["out_mid"].to_numpy())
    t["M_raw"], t["M"], t["mix_status"] = mix.raw, mix.clamped, mix.status
    t["mix_group"] = mix_group(mix.clamped, mix_factor)
    t["fig4_group"] = skip_overwrite_group(mix.clamped)
    sd = table_scale_deltas(t, a3_mean, sm_rule)
    t["m_delta"], t["n_delta"], t["m"], t["n"], t["scale_status"] = sd.m_delta, sd.n_delta, sd.m, sd.n, sd.status
    t["SM"] = scale_metric(sd.m, sd.n, scale_rule)
    pass_all, pass_nomix = pass_flags(mix.raw, sd, mix_factor, scale_rule, scale_sign)
    t["pass_all"], t["pass_nomix"] = pass_all, pass_nomix
    t["status"] = [_channel_status(row) for row in t.to_dict("records")]
    return t


def _channel_status(row: dict) -> str:
    flags = []
    for role in ("I", "B", "O"):
        s = row.get(f"fv_status_{role}")
        if isinstance(s, str) and s != "ok":
            flags.append(f"fv_{role}:{s}")
    if row.get("stimulus_status") not in (None, "ok") and isinstance(row.get("stimulus_status"), str):
        flags.append(row["stimulus_status"])
    if row["mix_status"] != MIX_OK:
        flags.append(row["mix_status"] if row["mix_status"].startswith("mix_rule") else f"mix:{row['mix_status']}")
    if row["scale_status"] != SCALE_OK:
        flags.append(row["scale_status"])
    rs = row.get("rho_status")
    if isinstance(rs, str) and not rs.startswith(STAT_OK):
        flags.append(f"rho:{rs}")
    return ";".join(flags) if flags else "ok"
