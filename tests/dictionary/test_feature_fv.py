"""Feature FVs: the objective is the crosscoder's encoder on the block's taps, and the FV engine
raises it."""

import json

import numpy as np
import torch

from resstream.dictionary.crosscoder import TopKCrosscoder
from resstream.dictionary.feature_fv import FeatureMaps, chosen_features, render_feature_fvs
from resstream.fv.settings import FVSettings
from resstream.model.blocks import role_tap
from resstream.model.taps import block_taps
from resstream.model.walk import model_blocks
from resstream.model.weights import load_model

SETTINGS = dict(steps=6, lr=0.05, jitter=0, hook="intended", seed=0, rf_crop=True, bf16=False, microbatch=None,
                channels_last=False, tf32=False)


def _net_and_crosscoder():
    net, identity = load_model("resnet18", "random:0", allow_download=False)
    net.eval()
    crosscoder = TopKCrosscoder(["I", "B"], ["I", "B", "O"], {"I": 64, "B": 64, "O": 64}, n_latents=32, k=4, aux_k=4,
                                dead_tokens=100, seed=2)
    with torch.no_grad():
        crosscoder.b_enc.copy_(torch.linspace(-0.5, 0.5, 32))
    return net, identity, crosscoder


def test_feature_objective_is_the_encoder_pre_activation_on_the_taps():
    net, _, crosscoder = _net_and_crosscoder()
    blocks = model_blocks(net)
    readout = FeatureMaps(crosscoder, blocks, "1.1", "pre")
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        taps = block_taps(net, x, readout.taps, blocks=blocks)
        units = torch.tensor([5, 0, 31])
        maps = readout(taps, units)  # [3, 16, 16]
        i_map, b_map = (taps[role_tap(blocks, "1.1", r, "pre")] for r in "IB")
    for n, f in enumerate(units.tolist()):
        for cy, cx in ((8, 8), (0, 15)):
            # by hand: the token at the cell, scaled by ||token|| / sqrt(128), through the encoder column
            token = torch.cat([i_map[n, :, cy, cx], b_map[n, :, cy, cx]]).double()
            w, b = crosscoder.W_enc[:, f].detach().double(), float(crosscoder.b_enc[f].detach())
            by_hand = float(token @ w / (token.norm() / np.sqrt(128)) + b)
            assert np.isclose(float(maps[n, cy, cx]), by_hand, rtol=1e-4, atol=1e-5)
    # where a feature wins the TopK, its encoded value is this pre-activation
    tokens = {"I": i_map[:, :, 8, 8], "B": b_map[:, :, 8, 8]}
    z = crosscoder.encode(tokens)
    won = z[torch.arange(3), units] > 0
    assert torch.allclose(z[torch.arange(3), units][won], maps[:, 8, 8][won], atol=1e-5)


def test_feature_fv_raises_the_objective_and_its_crop_is_exact():
    net, identity, crosscoder = _net_and_crosscoder()
    features = [3, 17]
    cropped = render_feature_fvs(net, identity, crosscoder, "1.1", "pre", features, FVSettings(**SETTINGS))
    assert cropped.channels == features and cropped.images.shape == (2, 3, 224, 224)
    assert np.all(cropped.curve[:, -1] > cropped.curve[:, 0] + 0.1), cropped.curve
    # the receptive-field crop, planned on O, leaves I's and B's centre cell (and the objective) unchanged
    full = render_feature_fvs(net, identity, crosscoder, "1.1", "pre", features,
                              FVSettings(**{**SETTINGS, "rf_crop": False, "steps": 1}))
    assert np.allclose(full.curve[:, 0], cropped.curve[:, 0], rtol=1e-4, atol=1e-5)


def test_chosen_features_are_the_most_often_firing(tmp_path):
    path = tmp_path / "features.json"
    firing = [0.1, 0.0, 0.3, 0.1, 0.05]
    path.write_text(json.dumps({"features": [{"feature": i, "firing": v} for i, v in enumerate(firing)]}))
    assert chosen_features(str(path), 3) == [0, 2, 3]
    assert chosen_features(str(path), 10) == [0, 2, 3, 4]  # feature 1 never fired
