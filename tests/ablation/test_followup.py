"""The follow-up paper's numbers beside a run's (followup_check.csv), on hand-made rows."""

import pandas as pd
import pytest

from resstream.ablation.followup import followup_check, load_followup

COLUMNS = ["block", "set", "kind", "path", "trial", "scale", "fill", "accuracy", "kl", "n", "kept"]


def rows(target_at_15):
    """Block 2.1: pass_all at scales 1 and 1.5 (60 %, then ``target_at_15``), two random trials at 60 / 50 %."""
    out = []
    for scale, target in ((1.0, 60.0), (1.5, target_at_15)):
        out.append(("2.1", "pass_all", "mean", "O", -1, scale, "", target, 0.1, 10, True))
        out += [("2.1", "random:pass_all", "mean", "O", t, scale, "", 60.0 if scale == 1 else 50.0, 0.1, 10, True)
                for t in (0, 1)]
    return pd.DataFrame(out, columns=COLUMNS)


def test_the_authors_numbers_and_their_origin_are_recorded():
    claims = load_followup()
    assert claims["accuracy"]["2.1"]["by_scale"][1.5] == 44.292 and claims["accuracy"]["3.1"]["by_scale"][1.0] == 63.493
    assert claims["accuracy"]["2.1"]["channels"] == 23 and "2504.16290" in claims["paper"]


@pytest.mark.parametrize("target_at_15, pretrained, verdict", [
    (40.0, True, "reproduced"), (55.0, True, "not reproduced"), (40.0, False, "not judged: random weights")])
def test_claim_judged_on_the_ratio_only_for_pretrained_weights(target_at_15, pretrained, verdict):
    t = followup_check(rows(target_at_15), pretrained)
    assert list(t["scale"]) == [1.0, 1.1, 1.2, 1.3, 1.4, 1.5]  # the paper's scales, 3.1 not lesioned here
    assert t["paper_accuracy"].tolist()[-1] == 44.292
    last = t.iloc[-1]
    assert last["run_accuracy"] == target_at_15 and last["run_ratio"] == pytest.approx(target_at_15 / 50.0)
    assert last["verdict"] == verdict and set(t["verdict"][:-1]) == {""}
    assert t.iloc[1].isna()["run_accuracy"]  # scale 1.1 not run
    assert "arXiv 2504.16290" in last["source"]
