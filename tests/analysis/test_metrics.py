"""Every metric on small hand-made tables, against values worked out by hand in the comments."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from resstream.analysis import metrics as mt


def test_mix_ratio_rules_in_the_authors_order():
    out_in = [2.0, 1.0, 3.0, -1.0, 0.0, -2.0, -0.5, 0.0, np.nan, 6.0]
    out_mid = [4.0, 0.0, -1.0, 2.0, 5.0, -3.0, 0.0, 0.0, 1.0, 1.0]
    r = mt.mix_ratio(out_in, out_mid)
    # 2/4 = 0.5                                   ratio
    # out_mid = 0 <= 0                 -> 10      skip rule (out_in positive)
    # out_mid = -1 <= 0                -> 10      skip rule
    # out_in = -1 <= 0 (out_mid > 0)   -> 0       overwrite rule
    # out_in = 0 <= 0                  -> 0       overwrite rule
    # both < 0: the author's assert    -> dead, NaN
    # out_in -0.5 < 0 but out_mid = 0 is not < 0: the assert passes, out_mid <= 0 -> 10
    # both exactly 0: not dead (assert needs both < 0); out_mid <= 0 first -> 10
    # NaN input                        -> nan, NaN
    # 6/1 = 6 raw, clamped to 5
    np.testing.assert_array_equal(r.raw, [0.5, 10, 10, 0, 0, np.nan, 10, 10, np.nan, 6.0])
    np.testing.assert_array_equal(r.clamped, [0.5, 5, 5, 0, 0, np.nan, 5, 5, np.nan, 5.0])
    assert list(r.status) == [
        mt.MIX_OK,
        mt.MIX_RULE_SKIP,
        mt.MIX_RULE_SKIP,
        mt.MIX_RULE_OVERWRITE,
        mt.MIX_RULE_OVERWRITE,
        mt.MIX_DEAD,
        mt.MIX_RULE_SKIP,
        mt.MIX_RULE_SKIP,
        mt.MIX_NAN,
        mt.MIX_OK,
    ]


def test_mix_ok_is_strict_eq2_with_the_factor():
    # factor 1.5: 1/1.5 = 0.6667 < M < 1.5; the bounds themselves are excluded (code: M<=1/f or M>=f out)
    m = [2 / 3, 0.67, 1.0, 1.49, 1.5, 10.0, np.nan]
    np.testing.assert_array_equal(mt.mix_ok(m, 1.5), [False, True, True, True, False, False, False])
    # factor 100 (the author's first commit): 0.01 < M < 100
    np.testing.assert_array_equal(mt.mix_ok([0.01, 0.02, 99, 100], 100), [False, True, True, False])


def test_spectrum_groups_and_fig4_groups():
    m = [0.2, 2 / 3, 0.7, 1.0, 1.4, 1.5, 5.0, np.nan]
    # Fig 1 language with f = 1.5: overwrite M <= 2/3, mix 2/3 < M < 1.5, skip M >= 1.5
    assert list(mt.mix_group(m, 1.5)) == ["overwrite", "overwrite", "mix", "mix", "mix", "skip", "skip", "none"]
    # Fig 4 (code): skip M >= 1, overwrite M < 1; M = 1 counts as skip
    assert list(mt.skip_overwrite_group(m)) == [
        "overwrite",
        "overwrite",
        "overwrite",
        "skip",
        "skip",
        "skip",
        "skip",
        "none",
    ]


def test_mix_histogram_bins_and_closed_last_bin():
    counts, edges, dropped = mt.mix_histogram([0.0, 0.1, 0.25, 0.99, 1.0, 4.8, 5.0, np.nan])
    assert len(edges) == 21 and edges[0] == 0 and edges[-1] == 5 and np.allclose(np.diff(edges), 0.25)
    expected = np.zeros(20, dtype=int)
    expected[0] = 2  # 0.0, 0.1 in [0, 0.25)
    expected[1] = 1  # 0.25 in [0.25, 0.5)
    expected[3] = 1  # 0.99 in [0.75, 1.0)
    expected[4] = 1  # 1.0 in [1.0, 1.25)
    expected[19] = 2  # 4.8 and 5.0 in the closed [4.75, 5]
    np.testing.assert_array_equal(counts, expected)
    assert dropped == 1  # the NaN (dead unit) is counted, not binned


def test_relu_mean_is_mean_of_relu_not_relu_of_mean():
    # [-3, 1, 2]: mean of relu = (0 + 1 + 2)/3 = 1;  relu of mean = relu(0) = 0
    np.testing.assert_allclose(mt.relu_mean([[-3.0, 1.0, 2.0]]), [1.0])
    # a NaN (unreadable image) is left out: (0 + 4)/2 = 2; all NaN stays NaN
    np.testing.assert_allclose(mt.relu_mean([[-1.0, np.nan, 4.0], [np.nan, np.nan, np.nan]]), [2.0, np.nan])
    # one stimulus per channel: plain ReLU
    np.testing.assert_allclose(mt.relu_mean([-2.0, 3.0]), [0.0, 3.0])


def test_scale_deltas_by_hand():
    # channel 0: m = (relu 3 - relu 1) / 4 = 0.5;       n = (relu 2 - relu(-1)=0) / 2 = 1.0
    # channel 1: m = (0 - 0.5) / 2 = -0.25;             n = (1 - 3) / 4 = -0.5
    # channel 2: mid_mid = -2 (raw denominator kept: the code's sign flip) m = (1 - 0) / -2 = -0.5
    #            in_in = 0 -> n undefined (NaN, not inf)
    sd = mt.scale_deltas(
        scaled_b=[3.0, 0.0, 1.0],
        unscaled_b=[1.0, 0.5, 0.0],
        mid_mid=[4.0, 2.0, -2.0],
        scaled_i=[2.0, 1.0, 5.0],
        unscaled_i=[0.0, 3.0, 1.0],
        in_in=[2.0, 4.0, 0.0],
    )
    np.testing.assert_allclose(sd.m, [0.5, -0.25, -0.5])
    np.testing.assert_allclose(sd.n, [1.0, -0.5, np.nan])
    assert list(sd.status) == ["ok", "ok", f"{mt.SCALE_BAD_MID_MID};{mt.SCALE_BAD_IN_IN}"]


def test_scale_deltas_nan_inputs_are_recorded():
    sd = mt.scale_deltas([np.nan], [0.0], [1.0], [1.0], [0.0], [1.0])
    assert np.isnan(sd.m[0]) and sd.n[0] == 1.0 and sd.status[0] == mt.SCALE_NAN


def test_scale_metric_paper_and_mid_only():
    m = [0.5, 0.5, -0.1, np.nan]
    n = [0.25, -0.1, 0.4, 0.1]
    # SM (paper) = m + n: 0.75, 0.4, 0.3, NaN; mid_only: m
    np.testing.assert_allclose(mt.scale_metric(m, n, "paper"), [0.75, 0.4, 0.3, np.nan])
    np.testing.assert_allclose(mt.scale_metric(m, n, "mid_only"), m)
    with pytest.raises(ValueError, match="scale_rule 'both' unknown"):
        mt.scale_metric(m, n, "both")


# Six channels for the sign rules, worked by hand (a = relu B(S x_I), b = relu B(x_I), c = relu
# I(S^-1 x_B), d = relu I(x_B)):
#   ch  a-b = m_delta  mid_mid  m      c-d = n_delta  in_in  n      M
#   0   1-.5 = .5      2        .25    .3-0 = .3      1      .3     3    (outside the mix window)
#   1   1-0  = 1       -2       -.5    .2-0 = .2      1      .2     1
#   2   0-1  = -1      -1       1      0-2  = -2      -2     1      1
#   3   .4-0 = .4      0        NaN    .1-0 = .1      1      .1     1
#   4   .3-.3 = 0      1        0      .5-0 = .5      1      .5     1
#   5   NaN            1        NaN    .5-0 = .5      1      .5     1
SIGN_CASE = dict(
    scaled_b=[1.0, 1.0, 0.0, 0.4, 0.3, np.nan],
    unscaled_b=[0.5, 0.0, 1.0, 0.0, 0.3, 0.0],
    mid_mid=[2.0, -2.0, -1.0, 0.0, 1.0, 1.0],
    scaled_i=[0.3, 0.2, 0.0, 0.1, 0.5, 0.5],
    unscaled_i=[0.0, 0.0, 2.0, 0.0, 0.0, 0.0],
    in_in=[1.0, 1.0, -2.0, 1.0, 1.0, 1.0],
)
SIGN_M = [3.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_scale_deltas_raw_and_normalised_by_hand():
    sd = mt.scale_deltas(**SIGN_CASE)
    np.testing.assert_allclose(sd.m_delta, [0.5, 1.0, -1.0, 0.4, 0.0, np.nan])
    np.testing.assert_allclose(sd.n_delta, [0.3, 0.2, -2.0, 0.1, 0.5, 0.5])
    np.testing.assert_allclose(sd.m, [0.25, -0.5, 1.0, np.nan, 0.0, np.nan])
    np.testing.assert_allclose(sd.n, [0.3, 0.2, 1.0, 0.1, 0.5, 0.5])
    assert list(sd.status) == [
        "ok",
        mt.SCALE_BAD_MID_MID,
        f"{mt.SCALE_BAD_MID_MID};{mt.SCALE_BAD_IN_IN}",
        mt.SCALE_BAD_MID_MID,
        "ok",
        mt.SCALE_NAN,
    ]


@pytest.mark.parametrize(
    "sign, pass_nomix, pass_all",
    [
        # paper: the raw deltas of Eqs 3 and 4, m_delta > 0 and n_delta > 0 whatever the denominators:
        # ch0, ch1 (mid_mid -2), ch3 (mid_mid 0); ch2's deltas are negative, ch4's m_delta is 0
        # (strict), ch5's is NaN; pass_all also needs M: ch0's M is 3
        ("paper", [True, True, False, True, False, False], [False, True, False, True, False, False]),
        # code: the normalised deltas, m > 0 and n > 0: ch0; ch2 passes because both negative deltas are
        # flipped by negative denominators; ch1's m is -0.5 (flipped), ch3's m is NaN (zero
        # denominator), ch4's m is 0
        ("code", [True, False, True, False, False, False], [False, False, True, False, False, False]),
    ],
)
def test_scale_sign_rules_test_raw_or_normalised_deltas(sign, pass_nomix, pass_all):
    sd = mt.scale_deltas(**SIGN_CASE)
    pa, pn = mt.pass_flags(SIGN_M, sd, 1.5, "paper", sign)
    np.testing.assert_array_equal(pn, pass_nomix)
    np.testing.assert_array_equal(pa, pass_all)
    # mid_only: m alone -> the same flags here (every n of a passing m is positive)
    _, pn = mt.pass_flags(SIGN_M, sd, 1.5, "mid_only", sign)
    np.testing.assert_array_equal(pn, pass_nomix)
    with pytest.raises(ValueError, match="scale_sign 'raw' unknown"):
        mt.pass_flags(SIGN_M, sd, 1.5, "paper", "raw")


def test_ranking_by_scale_metric():
    channels = [10, 11, 12, 13, 14, 15]
    sm = [0.5, 0.9, 0.9, 2.0, np.nan, 0.1]
    passing = [True, True, True, False, True, True]
    # passing & finite: 10 (0.5), 11 (0.9), 12 (0.9), 15 (0.1); 13 fails, 14 is NaN
    # descending SM, ties by lower channel: 11, 12, 10, 15
    assert mt.top_by_scale_metric(channels, sm, passing, k=3) == [11, 12, 10]
    assert mt.top_by_scale_metric(channels, sm, passing, k=None) == [11, 12, 10, 15]
    assert mt.top_by_scale_metric(channels, sm, [False] * 6, k=3) == []


def test_closest_to_one():
    # |M - 1| (exact in binary): ch0 0.5, ch1 0.25, ch2 0.25, ch3 NaN, ch4 0.0, ch5 4.0
    # -> 4, then the tie 1, 2 (lower channel first)
    assert mt.closest_to_one([0, 1, 2, 3, 4, 5], [0.5, 1.25, 0.75, np.nan, 1.0, 5.0], k=3) == [4, 1, 2]


def test_both_criteria_ordered_by_fv_sm():
    # FV passes: 1 (SM .2), 2 (SM .9), 3 (SM .5); ImageNet passes 2, 3, 4 -> both: 2, 3 by FV SM desc
    got = mt.both_criteria(
        [1, 2, 3, 4], [True, True, True, False], [0.2, 0.9, 0.5, 3.0], [1, 2, 3, 4], [False, True, True, True]
    )
    assert got == [2, 3]


def test_spearman_by_hand_and_nan_handling():
    # x = 1,2,3,4 ; y = 1,3,2,4 -> ranks differ by d = 0,1,-1,0; rho = 1 - 6*2/(4*15) = 0.8
    r = mt.spearman([1, 2, 3, 4], [1, 3, 2, 4])
    assert r.statistic == pytest.approx(0.8) and r.n == 4 and r.status == "ok"
    assert r.pvalue == pytest.approx(stats.spearmanr([1, 2, 3, 4], [1, 3, 2, 4]).pvalue)
    # a NaN pair is dropped (and said so); the rest is the same data -> 0.8 again
    r = mt.spearman([1, 2, np.nan, 3, 4], [1, 3, 7, 2, 4])
    assert r.statistic == pytest.approx(0.8) and r.n == 4 and "1 non-finite pairs dropped" in r.status
    # undefined: constant input, too few pairs
    r = mt.spearman([1, 1, 1, 1], [1, 2, 3, 4])
    assert np.isnan(r.statistic) and np.isnan(r.pvalue) and "constant" in r.status
    assert "too few" in mt.spearman([1, 2], [2, 1]).status
    assert mt.spearman([1, 2], [2, 1]).as_dict()["statistic"] is None  # JSON-safe


def test_spearman_where_input_positive_per_channel():
    i = np.array([[1.0, -1.0], [2.0, -2.0], [3.0, 0.0], [-1.0, -3.0], [4.0, 1.0], [np.nan, 2.0]])
    b = np.array([[10.0, 1.0], [30.0, 1.0], [20.0, 1.0], [99.0, 1.0], [40.0, 2.0], [5.0, 3.0]])
    rho, p, n, status = mt.spearman_where_input_positive(i, b)
    # channel 0: I > 0 rows 0,1,2,4 (row 3 negative, row 5 NaN): I 1,2,3,4 vs B 10,30,20,40
    #            ranks 1,2,3,4 vs 1,3,2,4 -> rho 0.8
    # channel 1: I > 0 rows 4,5 only -> 2 pairs, undefined
    assert rho[0] == pytest.approx(0.8) and n[0] == 4 and status[0] == "ok"
    assert np.isnan(rho[1]) and n[1] == 2 and "too few" in status[1]


def test_anova_by_hand_and_edge_cases():
    # groups [1,2,3] (mean 2) and [4,5,6] (mean 5); grand mean 3.5
    # SS_between = 3*(1.5^2) + 3*(1.5^2) = 13.5, df 1; SS_within = 2 + 2 = 4, df 4
    # F = 13.5 / (4/4) = 13.5
    a = mt.anova([1, 2, 3], [4, 5, 6])
    assert a.statistic == pytest.approx(13.5) and a.n == 6 and a.status == "ok"
    assert a.pvalue == pytest.approx(stats.f_oneway([1, 2, 3], [4, 5, 6]).pvalue)
    # NaN dropped and recorded: same numbers
    a = mt.anova([1, 2, np.nan, 3], [4, 5, 6])
    assert a.statistic == pytest.approx(13.5) and "1 non-finite" in a.status
    assert "fewer than 2" in mt.anova([1], [2, 3]).status
    a = mt.anova([1, 1], [1, 1])
    assert np.isnan(a.statistic) and "variance" in a.status


def test_group_means():
    # overwrite: 1, 3 -> 2 ; skip: 10 (NaN ignored) ; no mix channel -> key absent
    g = mt.group_means([1.0, 3.0, 10.0, np.nan], ["overwrite", "overwrite", "skip", "skip"])
    assert g == {"overwrite": 2.0, "skip": 10.0}


def _raw(**cols):
    base = {c: [1.0] for c in mt.RAW_COLUMNS}
    base.update({k: v for k, v in cols.items()})
    n = max(len(v) for v in base.values())
    return pd.DataFrame({k: (v * n if len(v) == 1 else v) for k, v in base.items()})


def test_metric_table_from_raw_measurements():
    raw = _raw(
        channel=[0, 1, 2],
        out_in=[1.0, -1.0, 2.0],
        out_mid=[1.25, -2.0, 2.0],  # M = 0.8 | dead | 1.0
        mid_mid=[2.0, 2.0, 0.0],
        in_in=[4.0, 4.0, 1.0],
        relu_B_of_SxI=[3.0, 1.0, 1.0],
        relu_B_of_xI=[1.0, 1.0, 0.0],  # m = (3-1)/2=1 | 0 | (1-0)/0 = NaN
        relu_I_of_SinvxB=[2.0, 1.0, 1.0],
        relu_I_of_xB=[0.0, 1.0, 0.0],  # n = 2/4=0.5 | 0 | 1
        fv_status_I=["ok", "ok", "nan"],
        fv_status_B=["ok", "dead", "ok"],
        fv_status_O=["ok"] * 3,
    )
    t = mt.metric_table(raw, mix_factor=1.5, scale_rule="paper", a3_mean="code", sm_rule="code")  # the relu_* columns
    np.testing.assert_allclose(t["M"], [0.8, np.nan, 1.0])
    np.testing.assert_allclose(t["m_delta"], [2.0, 0.0, 1.0])
    np.testing.assert_allclose(t["n_delta"], [2.0, 0.0, 1.0])
    np.testing.assert_allclose(t["m"], [1.0, 0.0, np.nan])
    np.testing.assert_allclose(t["n"], [0.5, 0.0, 1.0])
    np.testing.assert_allclose(t["SM"], [1.5, 0.0, np.nan])
    # scale_sign paper (default): ch2's raw deltas are positive, so it passes although mid_mid = 0
    assert list(t["pass_all"]) == [True, False, True] and list(t["pass_nomix"]) == [True, False, True]
    code = mt.metric_table(
        raw, mix_factor=1.5, scale_rule="paper", scale_sign="code", a3_mean="code", sm_rule="code"
    )  # ch2: m NaN fails
    assert list(code["pass_all"]) == [True, False, False] and list(code["pass_nomix"]) == [True, False, False]
    assert list(t["mix_group"]) == ["mix", "none", "mix"] and list(t["fig4_group"]) == ["overwrite", "none", "skip"]
    assert t["status"][0] == "ok"
    assert t["status"][1] == "fv_B:dead;mix:dead"
    assert t["status"][2] == "fv_I:nan;scale:mid_mid<=0"
    with pytest.raises(ValueError, match="lacks column"):
        mt.metric_table(raw.drop(columns=["out_in"]))
    with pytest.raises(ValueError, match="mix_rules 'paper' unknown"):
        mt.metric_table(raw, mix_rules="paper")


def _hand_case(in_mid, b_of_sxi, mid_mid, i_of_xb, i_of_sinvxb, in_in):
    """A one-channel raw table from per-stimulus readings ``[K]`` through the measurement's own
    column builder (means and means of ReLU), O(X_I) = O(X_B) = 1 (M = 1, in the mix window)."""
    from resstream.analysis.measure import raw_quantities

    k = len(in_mid)
    cols = raw_quantities(
        out_in=[[1.0] * k],
        out_mid=[[1.0] * k],
        in_in=[[in_in] * k],
        mid_mid=[[mid_mid] * k],
        in_mid=[in_mid],
        i_of_xb=[[i_of_xb] * k],
        b_of_sxi=[b_of_sxi],
        i_of_sinvxb=[[i_of_sinvxb] * k],
    )
    return pd.DataFrame({"channel": [0], **cols})


# A.3 hand case: B(V_I) = [3, -3, 0 x 7], B(S V_I) = [2, 0 x 8], mid_mid = 1; n = 1 - 0 = 1 passes.
#   paper (ReLU of the mean): m = mean B(S V) - relu(mean B(V)) = 2/9 - relu(0) = 0.2222   -> passes
#   code (mean of ReLU):      m = mean relu B(S V) - mean relu B(V) = 2/9 - 3/9 = -0.1111 -> fails
# (B(S V) is never negative here, so sm_rule gives the same m under either a3_mean.)
@pytest.mark.parametrize("a3_mean, m, passes", [("paper", 2 / 9, True), ("code", -1 / 9, False)])
@pytest.mark.parametrize("sm_rule", ["paper", "code"])
def test_a3_mean_relu_of_mean_or_mean_of_relu_by_hand(a3_mean, m, passes, sm_rule):
    raw = _hand_case(
        in_mid=[3.0, -3.0] + [0.0] * 7, b_of_sxi=[2.0] + [0.0] * 8, mid_mid=1.0, i_of_xb=0.0, i_of_sinvxb=1.0, in_in=1.0
    )
    t = mt.metric_table(raw, a3_mean=a3_mean, sm_rule=sm_rule)
    assert t["m"][0] == pytest.approx(m, abs=1e-12) and t["n"][0] == 1.0
    assert t["SM"][0] == pytest.approx(m + 1.0, abs=1e-12)
    assert bool(t["pass_all"][0]) is passes and bool(t["pass_nomix"][0]) is passes
    assert mt.metric_table(raw)["m"][0] == pytest.approx(2 / 9)  # the default is the paper's


# SM hand case (one FV): B(x_I) = -0.5, B(S x_I) = -0.2, B(x_B) = mid_mid = 3; I(x_B) = 0.25,
# I(S^-1 x_B) = 0.5, I(x_I) = in_in = 1, so n = 0.25.
#   paper (Eq 5, raw scaled term): m = (-0.2 - relu(-0.5)) / 3 = -0.0667, SM = 0.1833
#   code (ReLU'd scaled term):     m = (relu(-0.2) - relu(-0.5)) / 3 = 0,  SM = 0.25
# The channel fails Eq 3 either way (-0.2 is not above 0).
@pytest.mark.parametrize("sm_rule, m, sm", [("paper", -0.2 / 3, 0.25 - 0.2 / 3), ("code", 0.0, 0.25)])
@pytest.mark.parametrize("a3_mean", ["paper", "code"])
def test_sm_rule_eq5_raw_or_relu_scaled_term_by_hand(sm_rule, m, sm, a3_mean):
    raw = _hand_case(in_mid=[-0.5], b_of_sxi=[-0.2], mid_mid=3.0, i_of_xb=0.25, i_of_sinvxb=0.5, in_in=1.0)
    t = mt.metric_table(raw, a3_mean=a3_mean, sm_rule=sm_rule)
    assert t["m"][0] == pytest.approx(m, abs=1e-12) and t["n"][0] == pytest.approx(0.25)
    assert t["SM"][0] == pytest.approx(sm, abs=1e-12)
    assert not t["pass_all"][0] and not t["pass_nomix"][0]
    assert mt.metric_table(raw)["SM"][0] == pytest.approx(0.25 - 0.2 / 3)  # the default is Eq 5


def test_unknown_a3_mean_or_sm_rule_is_named():
    raw = _hand_case(in_mid=[-0.5], b_of_sxi=[-0.2], mid_mid=3.0, i_of_xb=0.25, i_of_sinvxb=0.5, in_in=1.0)
    with pytest.raises(ValueError, match="analysis.a3_mean 'mean' unknown; one of paper, code"):
        mt.metric_table(raw, a3_mean="mean")
    with pytest.raises(ValueError, match="analysis.sm_rule 'relu' unknown; one of paper, code"):
        mt.metric_table(raw, sm_rule="relu")
