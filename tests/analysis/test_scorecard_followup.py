"""The follow-up paper (Longon, CVPRW 2025, arXiv 2504.16290) as the scorecard's second source: its
rows appear only with the ablation stage's lesion_ratios.csv, show the author's numbers and name
their origin; random weights are not judged, other weights are judged on the ratio to the random
lesions (hand-made lesion rows: reproduced, not reproduced, not lesioned)."""

import pandas as pd
import pytest

import helpers.paper_tables as pt
from resstream.ablation.figure import ratio_table
from resstream.analysis import scorecard as sc
from resstream.analysis.summary import read_table, write_table

SOURCE = "Longon, Naturally Computed Scale Invariance in the Residual Stream of ResNet18, CVPR 2025 Workshops, arXiv 2504.16290"
COLUMNS = ["block", "set", "kind", "path", "trial", "scale", "fill", "accuracy", "kl", "n", "kept"]
FOLLOWUP = ("followup_2.1_scale_lesion", "followup_3.1_scale_lesion")


def lesion_csv(tmp_path, target_at_15: float) -> str:
    """Block 2.1 only: pass_all (mean, O) at 60 % unscaled and ``target_at_15`` at s = 1.5; two random
    trials at 60 % then 50 %; a scale-down row that the claim must ignore."""
    rows = []
    for scale, fill, target, rand in ((1.0, "", 60.0, 60.0), (1.5, "", target_at_15, 50.0), (0.7, 0, 1.0, 50.0)):
        rows.append(("2.1", "pass_all", "mean", "O", -1, scale, fill, target, 0.1, 10, True))
        rows += [("2.1", "random:pass_all", "mean", "O", t, scale, fill, rand, 0.1, 10, True) for t in (0, 1)]
    path = str(tmp_path / "ablation" / "lesion_ratios.csv")
    write_table(ratio_table(pd.DataFrame(rows, columns=COLUMNS)), path, {})
    return path


def scorecard(tmp_path, weights, lesions):
    fv, imagenet = pt.write_tables(tmp_path, pt.agreeing(), weights=weights)
    out = sc.scorecard_outputs(str(tmp_path))
    return sc.write_scorecard(fv, imagenet, out, block_channels=pt.WIDTH, lesions_csv=lesions), out


def followup_rows(df) -> dict:
    return {r["claim_id"]: r for r in df[df["claim_id"].isin(FOLLOWUP)].to_dict("records")}


def test_follow_up_claims_on_random_weights_show_the_numbers_and_are_not_judged(tmp_path):
    df, out = scorecard(tmp_path, pt.RANDOM, lesion_csv(tmp_path, 40.0))
    rows = followup_rows(df)
    assert set(rows) == set(FOLLOWUP) and len(df) == 80 + 2
    r = rows["followup_2.1_scale_lesion"]
    assert r["figure"] == "Follow-up (arXiv 2504.16290): lesions" and r["block"] == "2.1"
    assert r["paper"].startswith(
        "63.75 % unscaled; 61.39, 59.39, 56.22, 51.69, 44.29 % at s = 1.1, 1.2, 1.3, 1.4, 1.5 (23 channels)"
    )
    assert r["this_run"] == "60 % unscaled; 40 % at s = 1.5; ratio to random: 1 at s = 1, 0.8 at s = 1.5"
    assert r["verdict"] == "not judged (random weights)"
    assert rows["followup_3.1_scale_lesion"]["verdict"] == "not judged (random weights)"  # 3.1 not lesioned
    md, page = open(out["md"]).read(), open(out["html"]).read()
    assert f"Second source: {SOURCE}:" in md and f"Second source: {SOURCE}:" in page
    assert "| Follow-up (arXiv 2504.16290): lesions | 2.1 |" in md
    assert page.count('data-claim="followup_2.1_scale_lesion" data-verdict="not judged"') == 1
    assert read_table(out["csv"])[1]["second_source"] == SOURCE


@pytest.mark.parametrize("target_at_15, verdict", [(40.0, sc.REPRODUCED), (55.0, sc.NOT_REPRODUCED)])
def test_follow_up_claims_are_judged_on_the_ratio_for_trained_weights(tmp_path, target_at_15, verdict):
    df, _ = scorecard(tmp_path, pt.CUSTOM, lesion_csv(tmp_path, target_at_15))
    rows = followup_rows(df)
    # 40 / 50 = 0.8 < 1 and below the unscaled 1.0; 55 / 50 = 1.1 is not
    assert rows["followup_2.1_scale_lesion"]["verdict"] == verdict
    assert rows["followup_3.1_scale_lesion"]["verdict"] == sc.NOT_APPLICABLE
    assert rows["followup_3.1_scale_lesion"]["this_run"] == "pass_all not lesioned (mean at O) in block 3.1"


def test_no_follow_up_rows_without_the_ablation_stage(tmp_path):
    df, out = scorecard(tmp_path, pt.CUSTOM, None)
    assert not followup_rows(df) and len(df) == 80
    assert "Second source" not in open(out["md"]).read() and "Second source" not in open(out["html"]).read()


def test_rules_and_sources_give_no_empty_quote_for_the_paraphrased_claims(tmp_path):
    _, out = scorecard(tmp_path, pt.RANDOM, lesion_csv(tmp_path, 40.0))
    line = next(x for x in open(out["md"]).read().splitlines() if x.startswith("- `followup_2.1_scale_lesion`"))
    assert 'Paper: ""' not in line and "Note: the author's mean-ablation accuracies from scale_robust.py" in line
