"""Hand-made metric tables (six channels per block with worked values), shared by the figure and
atlas tests."""

import numpy as np
import pandas as pd

from resstream.analysis import metrics
from resstream.analysis.summary import metric_table_csv, write_table

RANDOM = {
    "arch": "resnet18",
    "source": "random:0",
    "kind": "random",
    "state_dict_sha256": "aa" * 32,
    "weights_source": "random",
    "label": "resnet18 RANDOM WEIGHTS (random:0, not pretrained)",
}
PRETRAINED = {
    "arch": "resnet18",
    "source": "IMAGENET1K_V1",
    "kind": "pretrained",
    "state_dict_sha256": "bb" * 32,
    "weights_source": "torchvision",
    "label": "resnet18 IMAGENET1K_V1 (sha256 bbbbbbbbbbbb)",
}
LAYERS = {
    "2.0": {"I": "layer2.0.downsample.1", "B": "layer2.0.bn2", "O": "layer2.0.prerelu_out"},
    "2.1": {"I": "layer2.0.prerelu_out", "B": "layer2.1.bn2", "O": "layer2.1.prerelu_out"},
}


def hand_raw(block: str, imagenet: bool = False) -> pd.DataFrame:
    """Six channels; every normaliser is 1, relu I(x_B) = 0 but for ch2, relu B(x_I) = relu(in_mid).
    The raw and ReLU'd columns agree (one stimulus each), so a3_mean and sm_rule read them alike.

    ch  out_in out_mid  M (raw)      group      m    n    nomix  all(2/3<M<1.5)  SM
    0   1      1        1            mix        .5   .5   yes    yes             1.0
    1   .5     1        .5           overwrite  .2   .1   yes    no              .3
    2   3      1        3            skip       .1  -.1   no     no
    3   1     -1        10 (rule)->5 skip       .3   .3   yes    no
    4  -1     -1        dead (NaN)   none       .4   .4   yes    no
    5   1.2    1        1.2          mix        .6   .1   yes    yes             .7
    ImageNet: ch1 out_in .9 (M .9, passes all); ch0 relu B(V_I) = 1 so m = .5 - 1 = -.5 (fails).
    """
    n = 6
    df = pd.DataFrame({c: np.zeros(n) for c in metrics.RAW_COLUMNS})
    df["block"], df["channel"], df["stimulus"] = block, np.arange(n), "imagenet" if imagenet else "fv"
    df["out_in"] = [1.0, 0.5, 3.0, 1.0, -1.0, 1.2]
    df["out_mid"] = [1.0, 1.0, 1.0, -1.0, -1.0, 1.0]
    df["mid_mid"] = df["in_in"] = 1.0
    df["in_mid"] = [-0.5, -1.0, 0.5, 0.2, -0.3, 0.1]
    df["relu_B_of_xI"] = np.maximum(df["in_mid"], 0.0)
    df["B_of_SxI"] = df["relu_B_of_SxI"] = df["relu_B_of_xI"] + [
        0.5,
        0.2,
        0.1,
        0.3,
        0.4,
        0.6,
    ]  # m_delta as in the table above
    df["I_of_SinvxB"] = df["relu_I_of_SinvxB"] = [0.5, 0.1, 0.0, 0.3, 0.4, 0.1]
    df["I_of_xB"] = df["relu_I_of_xB"] = [0.0, 0.0, 0.1, 0.0, 0.0, 0.0]  # ch2: n = 0 - 0.1 = -0.1
    df["bn_gamma_abs"] = [0.9, 1.2, 0.3, 0.2, 0.5, 0.8]
    df["conv_w_abs_mean"] = [0.05, 0.06, 0.01, 0.02, 0.03, 0.04]
    df["rho_BI"] = [-0.5, -0.7, 0.1, 0.2, np.nan, 0.0]
    df["rho_status"] = ["ok"] * 4 + ["too few pairs (1 < 3)", "ok"]
    for role in "IBO":
        df[f"fv_status_{role}"] = "ok"
    df["stimulus_status"] = "ok"
    if imagenet:
        df.loc[1, "out_in"] = 0.9
        df.loc[0, ["in_mid", "relu_B_of_xI"]] = 1.0
    return df


def write_hand_tables(results, weights=RANDOM, blocks=("2.0", "2.1")):
    fv, imnet = {}, {}
    for block in blocks:
        meta = {
            "weights": weights,
            "block": block,
            "layers": LAYERS[block],
            "block_type": "simple" if block == "2.1" else "downsample",
            "analysis": {"mix_rules": "code", "mix_factor": 1.5, "scale_rule": "paper", "scale_sign": "paper"},
            "o_relu": "pre",
            "fv_hook": "intended",
        }
        for stim, dest in (("fv", fv), ("imagenet", imnet)):
            path = metric_table_csv(str(results), block, stim)
            write_table(metrics.metric_table(hand_raw(block, stim == "imagenet")), path, meta)
            dest[block] = path
    return fv, imnet
