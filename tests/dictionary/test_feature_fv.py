"""Feature FVs: the objective is the crosscoder's encoder on the block's taps, and the FV engine
raises it."""

import numpy as np
import pytest
import torch

from resstream.dictionary.crosscoder import TopKCrosscoder
from resstream.dictionary.exemplars import patch_box
from resstream.dictionary.feature_fv import FeatureMaps, chosen_features, render_feature_fvs, writes_most
from resstream.fv.settings import FVSettings
from resstream.model.blocks import role_tap
from resstream.model.taps import block_taps
from resstream.model.walk import model_blocks
from resstream.model.weights import load_model

SETTINGS = dict(
    steps=6,
    lr=0.05,
    jitter=0,
    hook="intended",
    seed=0,
    rf_crop=True,
    bf16=False,
    microbatch=None,
    channels_last=False,
    tf32=False,
)


def _net_and_crosscoder():
    net, identity = load_model("resnet18", "random:0", allow_download=False)
    net.eval()
    crosscoder = TopKCrosscoder(
        ["I", "B"], ["I", "B", "O"], {"I": 64, "B": 64, "O": 64}, n_latents=32, k=4, aux_k=4, dead_tokens=100, seed=2
    )
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
    full = render_feature_fvs(
        net, identity, crosscoder, "1.1", "pre", features, FVSettings(**{**SETTINGS, "rf_crop": False, "steps": 1})
    )
    assert np.allclose(full.curve[:, 0], cropped.curve[:, 0], rtol=1e-4, atol=1e-5)


def test_chosen_features_are_the_most_often_firing():
    firing = [0.1, 0.0, 0.3, 0.1, 0.05]
    features = [{"feature": i, "firing": v} for i, v in enumerate(firing)]
    assert [x["feature"] for x in chosen_features(features, 3)] == [0, 2, 3]
    assert [x["feature"] for x in chosen_features(features, 10)] == [0, 2, 3, 4]  # feature 1 never fired


def test_writes_most_orders_the_o_channels_by_decoder_magnitude():
    _, _, crosscoder = _net_and_crosscoder()
    with torch.no_grad():
        crosscoder.W_dec["O"][7].zero_()
        crosscoder.W_dec["O"][7, [4, 9, 60]] = torch.tensor([0.2, -0.5, 0.3])
    assert writes_most(crosscoder, 7, 2) == [[9, -0.5], [60, pytest.approx(0.3)]]


def test_patch_box_is_the_window_the_cell_sees():
    net, _, _ = _net_and_crosscoder()
    blocks = model_blocks(net)
    x = torch.rand(1, 3, 96, 96, requires_grad=True)
    o = block_taps(net, x, [role_tap(blocks, "2.0", "O", "pre")], blocks=blocks).popitem()[1]  # [1, 128, 12, 12]
    for cell in ([0, 0], [5, 11]):
        x.grad = None
        o[0, :, cell[0], cell[1]].sum().backward(retain_graph=True)
        y0, y1, x0, x1 = patch_box(net, blocks, "2.0", "pre", cell, 96)
        seen = x.grad[0].abs().sum(0) > 0
        rows, cols = seen.any(1).nonzero().flatten(), seen.any(0).nonzero().flatten()
        # the gradient reaches every row and column of the box (a 3x3 conv's window is full) and none outside
        assert (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1) == (y0, y1, x0, x1)
