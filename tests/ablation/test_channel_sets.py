"""Channel sets from hand-made tables; random control sets (seeded, size-matched, excluding the
target); the unscaled-accuracy filter on hand cases."""

import pandas as pd
import pytest

from resstream.ablation.channel_sets import (
    ChannelSetError,
    mark_kept,
    random_sets,
    set_seed,
    table_channel_set,
    trial_kept,
)

TABLE = pd.DataFrame(
    {
        "block": ["2.1"] * 5 + ["3.1"] * 2,
        "channel": [0, 1, 2, 3, 4, 0, 1],
        "pass_all": [True, False, True, False, False, True, True],
        "pass_nomix": [True, True, True, False, False, False, True],
        "mix_group": ["skip", "mix", "overwrite", "skip", "none", "mix", "mix"],
    }
)


@pytest.mark.parametrize(
    "name, channels",
    [("pass_all", (0, 2)), ("pass_nomix", (0, 1, 2)), ("skip", (0, 3)), ("mix", (1,)), ("overwrite", (2,))],
)
def test_sets_come_from_the_table(name, channels):
    assert table_channel_set(TABLE, "2.1", name) == channels


def test_explicit_list_and_unknown_set():
    assert table_channel_set(TABLE, "2.1", "list", [7, 3]) == (3, 7)
    with pytest.raises(ChannelSetError, match="ablation set 'odd' unknown; use one of pass_all, pass_nomix"):
        table_channel_set(TABLE, "2.1", "odd")


def test_random_sets_are_seeded_size_matched_and_exclude_the_target():
    target = (1, 5, 9, 20, 33)
    sets = random_sets(64, target, 10, set_seed(0, "2.1", "pass_all"))
    assert sets == random_sets(64, target, 10, set_seed(0, "2.1", "pass_all"))
    assert sets != random_sets(64, target, 10, set_seed(1, "2.1", "pass_all"))
    assert sets != random_sets(64, target, 10, set_seed(0, "3.1", "pass_all"))
    assert len(set(sets)) == 10
    for s in sets:
        assert len(s) == len(set(s)) == 5 and not set(s) & set(target) and all(0 <= c < 64 for c in s)
    with pytest.raises(ChannelSetError, match="a random set of 40 channels cannot avoid the target's 40 among 64"):
        random_sets(64, range(40), 1, 0)


@pytest.mark.parametrize(
    "target, random, kept", [(60.0, 61.0, True), (60.0, 61.5, False), (60.0, 50.0, True), (60.0, 60.0, True)]
)
def test_filter_keeps_trials_at_most_a_point_less_damaging(target, random, kept):
    assert trial_kept(target, random, 1.0) is kept


def test_mark_kept_drops_a_trial_at_every_scale_by_its_unscaled_accuracy():
    rows = pd.DataFrame(
        [
            ("2.1", "pass_all", "mean", "O", -1, 1.0, 60.0),
            ("2.1", "pass_all", "mean", "O", -1, 1.3, 40.0),
            ("2.1", "random:pass_all", "mean", "O", 0, 1.0, 60.5),
            ("2.1", "random:pass_all", "mean", "O", 0, 1.3, 55.0),
            ("2.1", "random:pass_all", "mean", "O", 1, 1.0, 62.0),
            ("2.1", "random:pass_all", "mean", "O", 1, 1.3, 50.0),
        ],
        columns=["block", "set", "kind", "path", "trial", "scale", "accuracy"],
    )
    assert mark_kept(rows, 1.0)["kept"].tolist() == [True, True, True, True, False, False]
    assert mark_kept(rows, 2.5)["kept"].all()
