"""Taps against independent computations from each block's own submodules."""

import pytest
import torch

from helpers.manual_forward import assert_taps_match_manual_forward, manual_block, manual_maps
from resstream.model.blocks import O_POST, O_PRE, B, TapRef, layer_name, parse_layer, study_layers
from resstream.model.taps import block_taps, center_activation, center_index
from resstream.model.walk import model_blocks
from resstream.model.weights import load_model


@pytest.mark.parametrize("block", ["1.1", "2.0", "2.1", "3.0", "3.1", "4.0", "4.1"])
def test_every_tap_matches_independent_computation(random_model, block):
    model, _ = random_model
    torch.manual_seed(1)
    x = torch.randn(2, 3, 224, 224)
    assert_taps_match_manual_forward(model, x, block, manual_maps(model, x, upto=block)[block]["X"])


@pytest.mark.parametrize("arch, last_bn, size", [("resnet18", "bn2", 224), ("resnet50", "bn3", 128)])
def test_reference_hook_on_the_last_bn_reads_the_wrong_tensor(random_model, arch, last_bn, size):
    """The guard is needed: a hook that keeps the branch's last BN output by reference sees
    relu(B + identity) (BasicBlock bn2, Bottleneck bn3); author_alias reproduces that on purpose."""
    model = random_model[0] if arch == "resnet18" else load_model(arch, "random:0")[0]
    x = torch.randn(1, 3, size, size)
    kept = {}
    h = getattr(model.layer2[1], last_bn).register_forward_hook(lambda m, a, out: kept.__setitem__("ref", out))
    with torch.no_grad():
        model(x)
    h.remove()
    with torch.no_grad():
        taps = block_taps(model, x, [TapRef("2.1", B), TapRef("2.1", O_POST)])
        alias = block_taps(model, x, [TapRef("2.1", B), TapRef("2.1", O_PRE)], hook_mode="author_alias")
    assert not torch.allclose(kept["ref"], taps[TapRef("2.1", B)], atol=1e-3)
    assert torch.equal(kept["ref"], taps[TapRef("2.1", O_POST)])
    assert torch.equal(alias[TapRef("2.1", B)], taps[TapRef("2.1", O_POST)])
    assert torch.equal(alias[TapRef("2.1", O_PRE)], taps[TapRef("2.1", O_POST)])


def test_taps_are_differentiable_and_give_the_true_gradient(random_model):
    model, _ = random_model
    x = torch.randn(1, 3, 224, 224, requires_grad=True)
    b = block_taps(model, x, [TapRef("1.1", B)])[TapRef("1.1", B)]
    b[0, 5, 28, 28].backward()
    g_tap = x.grad.clone()
    x2 = x.detach().clone().requires_grad_(True)
    ref = manual_block(model.layer1[1], manual_maps(model, x2, upto="1.1", grad=True)["1.1"]["X"])["B"]
    ref[0, 5, 28, 28].backward()
    torch.testing.assert_close(g_tap, x2.grad, atol=1e-6, rtol=1e-5)
    assert g_tap.abs().sum() > 0


def test_forward_stops_after_deepest_tap(random_model):
    model, _ = random_model
    called = []
    hooks = [
        model.layer3.register_forward_hook(lambda *a: called.append("layer3")),
        model.fc.register_forward_hook(lambda *a: called.append("fc")),
    ]
    with torch.no_grad():
        block_taps(model, torch.randn(1, 3, 224, 224), [TapRef("2.1", B), TapRef("1.1", O_PRE)])
    for h in hooks:
        h.remove()
    assert called == []


def test_center_index_rule():
    assert center_index(56, 56) == (28, 28)
    assert center_index(7, 7) == (3, 3)
    assert center_index(2, 2) == (1, 1)  # bottom-right of the central 2x2
    t = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    assert torch.equal(center_activation(t), t[:, :, 2, 2])


def test_layer_names_follow_spec_table(random_model):
    model, _ = random_model
    blocks = model_blocks(model)
    layers = study_layers(blocks, ["1.1", "2.0", "2.1", "3.0", "3.1", "4.0", "4.1"], o_relu="post")
    # docs/method.md#taps-i-b-and-o, docs/method.md#feature-visualizations: 18 FV layers, a simple block's I is the previous block's O
    assert list(layers) == [
        "layer1.0",
        "layer1.1.bn2",
        "layer1.1",
        "layer2.0.downsample.1",
        "layer2.0.bn2",
        "layer2.0",
        "layer2.1.bn2",
        "layer2.1",
        "layer3.0.downsample.1",
        "layer3.0.bn2",
        "layer3.0",
        "layer3.1.bn2",
        "layer3.1",
        "layer4.0.downsample.1",
        "layer4.0.bn2",
        "layer4.0",
        "layer4.1.bn2",
        "layer4.1",
    ]
    assert layers["layer2.0"] == [("2.0", "O"), ("2.1", "I")]
    for name in layers:
        assert layer_name(blocks, parse_layer(blocks, name)) == name
