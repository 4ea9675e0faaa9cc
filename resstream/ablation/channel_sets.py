"""Which channels a lesion holds: sets read from the study's own per-channel tables, an explicit
list, and the control: seeded random sets of the same size drawn from the block's other channels,
kept only when they hurt unscaled accuracy at least about as much as the target set (the follow-up
paper's rule: a trial whose unscaled accuracy exceeds the target's by more than ``margin`` points
is dropped, not redrawn).
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from resstream.base.errors import UserError

PASS_SETS = ("pass_all", "pass_nomix")  # scale-invariant channels (Eqs 2-5, with / without the mix test)
MIX_SETS = ("skip", "mix", "overwrite")  # the skip-overwrite spectrum's groups (mix_group)
LIST_SET = "list"
SET_SOURCES = PASS_SETS + MIX_SETS + (LIST_SET,)
RANDOM_PREFIX = "random:"


class ChannelSetError(UserError, ValueError):
    """A channel set that cannot be made; the message names the block, the set and the fix."""


def table_channel_set(table: pd.DataFrame, block: str, name: str, explicit=()) -> tuple[int, ...]:
    """The channels of ``block`` in set ``name``: a pass flag, a mix group, or ``explicit`` (``list``)."""
    if name == LIST_SET:
        return tuple(sorted(int(c) for c in explicit))
    if name not in SET_SOURCES:
        raise ChannelSetError(f"ablation set '{name}' unknown; use one of {', '.join(SET_SOURCES)}")
    rows = table[table["block"].astype(str) == block]
    chosen = rows[rows[name].astype(bool)] if name in PASS_SETS else rows[rows["mix_group"] == name]
    return tuple(sorted(int(c) for c in chosen["channel"]))


def set_seed(seed: int, block: str, set_name: str) -> list[int]:
    """A seed for one (block, set), so its random trials do not change when other blocks or sets
    are added to the config."""
    return [int(seed), zlib.crc32(f"{block}/{set_name}".encode())]


def random_sets(n_channels: int, target, trials: int, seed) -> list[tuple[int, ...]]:
    """``trials`` random sets of ``len(target)`` channels, none in ``target``, from ``seed``."""
    others = np.setdiff1d(np.arange(n_channels), np.asarray(target, dtype=int))
    if len(others) < len(target):
        raise ChannelSetError(
            f"a random set of {len(target)} channels cannot avoid the target's {len(target)} "
            f"among {n_channels}; Fix: lesion a smaller set"
        )
    rng = np.random.default_rng(seed)
    return [tuple(sorted(int(c) for c in rng.choice(others, size=len(target), replace=False))) for _ in range(trials)]


def trial_kept(target_unscaled: float, random_unscaled: float, margin: float) -> bool:
    """Keep a random trial unless its unscaled accuracy (percent) exceeds the target's by more than
    ``margin`` points: a random lesion that hurts much less would make any target look special."""
    return random_unscaled - target_unscaled <= margin


def mark_kept(rows: pd.DataFrame, margin: float) -> pd.DataFrame:
    """``rows`` (``ablation.csv``) with a ``kept`` column: target rows and the unlesioned network's
    are kept; each random trial is kept or dropped at every scale by its unscaled accuracy."""
    out = rows.copy()
    out["kept"] = True
    unscaled = out[out["scale"] == 1.0].set_index(["block", "set", "kind", "path", "trial"])["accuracy"]
    for i, row in out[out["set"].astype(str).str.startswith(RANDOM_PREFIX)].iterrows():
        target = unscaled[(row["block"], row["set"][len(RANDOM_PREFIX) :], row["kind"], row["path"], -1)]
        mine = unscaled[(row["block"], row["set"], row["kind"], row["path"], row["trial"])]
        out.at[i, "kept"] = trial_kept(target, mine, margin)
    return out
