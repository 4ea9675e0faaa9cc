"""The mix classes' causal table on hand-made ablation rows."""

import pandas as pd
import pytest

from resstream.ablation.mix_table import mix_class_table

COLUMNS = ["block", "set", "kind", "path", "trial", "scale", "accuracy", "kl", "kept"]


def rows(skip_kl, overwrite_kl):
    """Plain 60 %; per class and path the target (kl given) and two random trials (kl 0.1 and 0.3,
    the second dropped by the filter in the skip/I case)."""
    out = [("", "none", "", "", -1, 1.0, 60.0, 0.0, True)]
    for cls, kls in (("skip", skip_kl), ("overwrite", overwrite_kl)):
        for path, kl in zip(("I", "B"), kls):
            out.append(("2.1", cls, "mean", path, -1, 1.0, 50.0, kl, True))
            out.append(("2.1", "random:" + cls, "mean", path, 0, 1.0, 58.0, 0.1, True))
            out.append(("2.1", "random:" + cls, "mean", path, 1, 1.0, 56.0, 0.3, not (cls == "skip" and path == "I")))
            out.append(("2.1", cls, "mean", path, -1, 1.3, 10.0, 9.0, True))  # scaled rows are not read
    return pd.DataFrame(out, columns=COLUMNS)


def test_agreeing_run():
    t = mix_class_table(
        rows(skip_kl=(0.9, 0.4), overwrite_kl=(0.3, 0.8)), {("2.1", "skip"): 5, ("2.1", "overwrite"): 3}
    )
    skip_i = t[(t["mix_class"] == "skip") & (t["path"] == "I")].iloc[0]
    assert skip_i["accuracy_drop"] == 10.0 and skip_i["accuracy_drop_random"] == 2.0  # trial 1 dropped
    assert skip_i["kl_random"] == pytest.approx(0.1) and skip_i["kl_excess"] == pytest.approx(0.8)
    assert skip_i["channels"] == 5 and skip_i["agrees"] == "yes"
    over_b = t[(t["mix_class"] == "overwrite") & (t["path"] == "B")].iloc[0]
    assert over_b["accuracy_drop_random"] == 3.0 and over_b["kl_excess"] == pytest.approx(0.6)
    assert over_b["agrees"] == "yes"
    assert set(t[(t["path"] == "B") & (t["mix_class"] == "skip")]["agrees"]) == {"n/a"}
    assert len(t) == 4


def test_disagreeing_run():
    t = mix_class_table(rows(skip_kl=(0.2, 0.9), overwrite_kl=(0.9, 0.2)), {})
    assert t.set_index(["mix_class", "path"]).loc[("skip", "I"), "agrees"] == "no"
    assert t.set_index(["mix_class", "path"]).loc[("overwrite", "B"), "agrees"] == "no"


def test_no_mix_sets_give_an_empty_table():
    df = rows((0.1, 0.1), (0.1, 0.1))
    df = df[~df["set"].str.contains("skip|overwrite")]
    assert mix_class_table(df, {}).empty
