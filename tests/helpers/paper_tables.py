"""Hand-made metric tables of all seven resnet18 blocks, every channel, for the scorecard tests:
``agreeing`` says what the paper says, ``contrary`` the opposite of every claim, ``mixed`` a bit
of both.  Each channel is set by hand: its mix ratio M (out_in = M, out_mid = 1), whether it passes
the scale criteria with the FVs (and its SM) and with ImageNet, and per block the Fig 3 / Fig 4
columns.  The tables go through the real metric_table and write_table, as the workflow's do."""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.hand_tables import PRETRAINED, RANDOM
from resstream.analysis import metrics
from resstream.analysis.summary import metric_table_csv, write_table

WIDTH = {"1.1": 64, "2.0": 128, "2.1": 128, "3.0": 256, "3.1": 256, "4.0": 512, "4.1": 512}
SIMPLE, DOWNSAMPLE = ("1.1", "2.1", "3.1"), ("2.0", "3.0", "4.0")
FIG7 = {
    "1.1": [19],
    "2.0": [7, 15, 53, 3],
    "2.1": [108, 36, 13, 21, 60, 52, 93, 5, 58],
    "3.1": [113, 178, 22, 215, 204, 25, 29, 154, 200],
}
FIG8 = {
    "1.1": [44, 27, 55],
    "2.0": [42, 9, 78],
    "2.1": [22, 116, 72],
    "3.0": [105, 250, 204],
    "3.1": [128, 246, 41],
    "4.0": [163, 3, 51],
    "4.1": [154, 68, 496],
}
IN_WINDOW = 1.2  # a mix ratio inside 2/3 < M < 3/2
# A user's own trained checkpoint (the scorecard judges it, with its label)
CUSTOM = {
    "arch": "resnet18",
    "source": "/data/ckpt/my_resnet18.pt",
    "kind": "custom",
    "state_dict_sha256": "cc" * 32,
    "file_sha256": "dd" * 32,
    "pretrained": True,
    "label": "resnet18 custom checkpoint my_resnet18.pt (file sha256 dddddddddddd, not torchvision's weights)",
}


class Block:
    """Per-channel settings of one block's FV and ImageNet tables."""

    def __init__(self, name: str, m_default):
        n = WIDTH[name]
        self.name, self.c = name, np.arange(n)
        self.M = np.array([m_default(c) for c in range(n)], dtype=float)
        self.fv_sm = np.full(n, np.nan)  # NaN: fails the scale criteria; else passes them with this SM
        self.imagenet = np.zeros(n, dtype=bool)  # passes the scale criteria with ImageNet
        self.negative_denominator = np.zeros(n, dtype=bool)  # FV mid_mid = -1 (m's sign flips)
        self.fig3, self.fig4_top, self.fig4_bottom = "negative", "equal", "equal"
        self.in_mid_offset = 0.0  # added to B(x_I): shifts every value, leaves the Fig 4 comparisons as they are

    def passes(self, channels, sm_from: float, imagenet: bool = True, m: float | None = None):
        """These channels pass the FV criteria (SM descending from ``sm_from`` in the given order)."""
        for i, c in enumerate(channels):
            self.fv_sm[c] = sm_from - 0.01 * i
            self.imagenet[c] = imagenet
            if m is not None:
                self.M[c] = m

    def free(self, count: int, avoid=()):
        """``count`` channels not used by any list so far (from the top down)."""
        used = (
            set(avoid)
            | {c for b in (FIG7, FIG8) for c in b.get(self.name, [])}
            | set(np.flatnonzero(np.isfinite(self.fv_sm)))
        )
        return [int(c) for c in self.c[::-1] if c not in used][:count]

    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return _raw(self, "fv"), _raw(self, "imagenet")


def _group_values(groups, mode: str, c) -> np.ndarray:
    """Fig 4 column: overwrite lower than skip ("lower"; a tenth of the skip channels negative too),
    higher ("higher"), or the same mean ("equal")."""
    sign = np.where(groups == metrics.OVERWRITE, -1.0, 1.0)
    wiggle = 0.01 * (c % 3)
    if mode == "lower":
        return np.where((groups == metrics.SKIP) & (c % 10 == 0), -0.5, sign + sign * wiggle)
    if mode == "higher":
        return -sign - sign * wiggle
    out = np.zeros(len(c))
    for g in (metrics.OVERWRITE, metrics.SKIP):  # +1, -1, +1, -1 ... within each group: both means near 0
        idx = np.flatnonzero(groups == g)
        out[idx] = [(1.0 if k % 2 == 0 else -1.0) for k in range(len(idx))]
        if len(idx) % 2:
            out[idx[-1]] = 0.0
    return out


def _raw(b: Block, stimulus: str) -> pd.DataFrame:
    n = len(b.c)
    passing = np.isfinite(b.fv_sm) if stimulus == "fv" else b.imagenet
    sm = np.where(np.isfinite(b.fv_sm), b.fv_sm, 1.0)
    df = pd.DataFrame({col: np.zeros(n) for col in metrics.RAW_COLUMNS})
    df["block"], df["channel"], df["stimulus"] = b.name, b.c, stimulus
    df["out_in"], df["out_mid"] = b.M, 1.0
    df["mid_mid"] = np.where(b.negative_denominator & (stimulus == "fv"), -1.0, 1.0)
    df["in_in"] = 1.0
    groups = metrics.skip_overwrite_group(np.minimum(b.M, 5))
    gamma = 1.0 / (1.0 + b.M) + 1e-6 * b.c if b.fig3 == "negative" else b.M + 1e-6 * b.c
    df["bn_gamma_abs"], df["conv_w_abs_mean"] = gamma, gamma / 10
    df["in_mid"] = _group_values(groups, b.fig4_top, b.c) + b.in_mid_offset
    # passing: m_delta = n_delta = SM / 2 > 0; failing: both -0.1 (the raw and ReLU'd columns agree,
    # as for one stimulus, so every a3_mean and sm_rule reading passes the same channels)
    relu_b = np.maximum(df["in_mid"], 0.0)
    df["relu_B_of_xI"] = relu_b
    df["B_of_SxI"] = relu_b + np.where(passing, sm / 2, -0.1)
    df["relu_B_of_SxI"] = np.maximum(df["B_of_SxI"], 0.0)
    df["I_of_SinvxB"] = df["relu_I_of_SinvxB"] = np.where(passing, sm / 2, 0.0)
    df["I_of_xB"] = df["relu_I_of_xB"] = np.where(passing, 0.0, 0.1)
    df["rho_BI"] = _group_values(groups, b.fig4_bottom, b.c) / 2
    df["rho_status"] = "ok"
    for role in "IBO":
        df[f"fv_status_{role}"] = "ok"
    df["stimulus_status"] = "ok"
    if stimulus == "imagenet":  # O and I read both ways: the same values (all positive)
        for name in ("out_in", "out_mid", "in_in"):
            df[f"{name}_pre"] = df[f"{name}_post"] = df[name]
    return df


def _simple_m(c):
    return 0.3 + 0.05 * (c % 5) if c % 8 == 7 else 1.6 + 0.1 * (c % 30)  # an eighth overwrite, the rest skip


def _downsample_m(c):
    return 0.2 + 0.1 * (c % 4)  # overwrite


def agreeing() -> dict[str, Block]:
    """Every claim of paper_claims.yaml holds."""
    blocks = {b: Block(b, _simple_m) for b in SIMPLE}
    blocks.update({b: Block(b, _downsample_m) for b in DOWNSAMPLE})
    blocks["4.1"] = Block("4.1", lambda c: 0.1)
    b11 = blocks["1.1"]
    b11.M[38] = 0.3  # Fig 1A: overwrite; 19 mix (Fig 7, below); 25 skip by default
    for name, b in blocks.items():
        for k, c in enumerate(FIG8[name]):
            b.M[c] = (0.24 - 0.01 * k) if name == "4.1" else 1.0 + 0.01 * k
        if name in FIG7:
            b.passes(FIG7[name], 100.0, m=IN_WINDOW)
    b11.passes([46] + b11.free(2), 99.0, imagenet=False, m=IN_WINDOW)  # Fig 6: 19 and 46 on top; 4 of 64 pass
    blocks["2.0"].passes(blocks["2.0"].free(3), 50.0, imagenet=False, m=IN_WINDOW)  # 7 of 128
    blocks["3.1"].passes(blocks["3.1"].free(5), 50.0, imagenet=False, m=IN_WINDOW)  # 14 of 256
    blocks["2.1"].passes(blocks["2.1"].free(10), 20.0, imagenet=False, m=3.0)  # without mix: 19 of 128
    blocks["3.1"].passes(blocks["3.1"].free(20), 20.0, imagenet=False, m=3.0)  # without mix: 34 of 256
    blocks["3.0"].passes(blocks["3.0"].free(20), 20.0, imagenet=False)  # without mix only (overwrite M): 20 of 256
    blocks["4.0"].passes(blocks["4.0"].free(2), 20.0, imagenet=False)  # 2 of 512 without mix
    blocks["4.1"].passes(blocks["4.1"].free(2), 20.0, imagenet=False)
    blocks["2.1"].fig4_top = blocks["3.1"].fig4_top = "lower"
    blocks["3.1"].fig4_bottom = "lower"
    return blocks


def contrary() -> dict[str, Block]:
    """Every claim fails."""
    blocks = {b: Block(b, lambda c: 3.0 if c % 8 == 7 else 0.3) for b in SIMPLE}  # simple blocks overwrite-skewed
    blocks.update({b: Block(b, lambda c: 3.0) for b in DOWNSAMPLE})  # downsample blocks skip
    blocks["4.1"] = Block("4.1", lambda c: 3.0 if c % 5 < 3 else 0.0)  # 40 % in the lowest bin, all of them zero
    b11 = blocks["1.1"]
    b11.M[[38, 19, 25]] = [3.0, 0.3, IN_WINDOW]  # Fig 1A groups swapped
    for b in blocks.values():
        for k, c in enumerate((0, 1, 2)):  # Fig 8: other channels closest to 1 (4.1: M = 1, not < 0.25)
            b.M[c] = 1.0 + 0.01 * k
        b.fig3 = "positive"
    for name in ("3.0", "4.0", "4.1"):  # Figs 5, 7: passers where the paper has none, many without mix
        b = blocks[name]
        b.passes(b.free(WIDTH[name] // 40, avoid=(0, 1, 2)), 50.0, m=IN_WINDOW)
        if name != "3.0":
            b.passes(b.free(WIDTH[name] // 6, avoid=(0, 1, 2)), 10.0, imagenet=False, m=3.0)
    blocks["3.0"].negative_denominator[np.isfinite(blocks["3.0"].fv_sm)] = True  # its Fig 7 channels: m < 0
    blocks["1.1"].fig4_top = blocks["1.1"].fig4_bottom = blocks["2.1"].fig4_bottom = "lower"
    for b in blocks.values():  # no B(x_I) < 0 anywhere (the paper: many channels, skip channels too)
        b.in_mid_offset = 10.0
    blocks["2.1"].fig4_top = blocks["3.1"].fig4_top = blocks["3.1"].fig4_bottom = "higher"
    return blocks


def mixed() -> dict[str, Block]:
    """The agreeing tables, but in 3.1 only 6 of the 9 Fig 7 channels pass with ImageNet and 6 others
    do (Fig 7 3.1: 6 of 9 found, precision 0.5), and 2.0's Fig 8 has one channel of the paper's."""
    blocks = agreeing()
    b31 = blocks["3.1"]
    b31.imagenet[[204, 29, 200]] = False
    b31.passes(b31.free(6), 40.0, m=IN_WINDOW)
    b20 = blocks["2.0"]
    b20.M[[9, 78]] = 0.3
    b20.M[[0, 1]] = [1.005, 1.015]
    return blocks


def write_tables(results, blocks: dict[str, Block], weights=CUSTOM, o_relu: str = "pre", edit=None, **analysis):
    """The blocks' FV and ImageNet metric tables under ``results``: ``({block: csv}, {block: csv})``.
    ``edit(block, stimulus, raw)``, if given, changes a raw table before its metrics are derived."""
    settings = {"mix_rules": "code", "mix_factor": 1.5, "scale_rule": "paper", "scale_sign": "paper", **analysis}
    fv, imagenet = {}, {}
    for name, b in blocks.items():
        meta = {"weights": weights, "block": name, "o_relu": o_relu, "analysis": settings}
        for stimulus, raw, dest in zip(("fv", "imagenet"), b.tables(), (fv, imagenet)):
            if edit is not None:
                edit(name, stimulus, raw)
            path = metric_table_csv(str(results), name, stimulus)
            write_table(metrics.metric_table(raw, **settings), path, meta)
            dest[name] = path
    return fv, imagenet


__all__ = ["agreeing", "contrary", "mixed", "write_tables", "CUSTOM", "PRETRAINED", "RANDOM"]
