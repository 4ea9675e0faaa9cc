"""Lesion hooks against a hand-written forward of the modified block (no hooks, no in-place ops)."""

import pytest
import torch
import torch.nn.functional as F

from helpers.manual_forward import manual_block, manual_maps
from resstream.ablation.lesion import Lesion, LesionError, clamped_means, lesion_constants, lesioned
from resstream.model.blocks import block_lookup
from resstream.model.walk import model_blocks

CHANNELS = (0, 3, 17, 40)
VALUES = (0.5, 0.0, 1.25, 2.0)


@pytest.fixture(scope="module")
def model_x(random_model):
    torch.manual_seed(1)
    return random_model[0], torch.randn(2, 3, 96, 96)


def hand_tail(model, start_block, h):
    """The network after ``start_block``'s output ``h``: later blocks, pool, fc (by hand)."""
    seen = False
    for stage in range(1, 5):
        for i, block in enumerate(getattr(model, f"layer{stage}")):
            if seen:
                h = manual_block(block, h)["O_post"]
            seen = seen or f"{stage}.{i}" == start_block
    return model.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


def hand_lesion(block, x, path, channels, values):
    """The block's ReLU output with the lesion written out: the sum's inputs edited by hand."""
    ref = manual_block(block, x)
    skip = ref["D"] if ref["D"] is not None else x
    b, i = ref["B"].clone(), skip.clone()
    v = torch.tensor(values)[None, :, None, None]
    if path == "B":
        b[:, list(channels)] = v
    elif path == "I":
        i[:, list(channels)] = v
    o = b + i
    if path == "O":
        o[:, list(channels)] = v
    return F.relu(o)


@pytest.mark.parametrize("block", ["1.1", "2.0"])
@pytest.mark.parametrize("path", ["O", "B", "I"])
def test_lesion_of_no_channels_is_the_plain_model(model_x, block, path):
    model, x = model_x
    info = block_lookup(model_blocks(model), block)
    with torch.no_grad():
        plain = model(x)
        with lesioned(model, info, Lesion(block, path, (), ())):
            same = model(x)
        after = model(x)
    assert torch.equal(plain, same)
    assert torch.equal(plain, after)


@pytest.mark.parametrize("block", ["1.1", "2.0"])  # identity skip, projection skip
@pytest.mark.parametrize("path", ["O", "B", "I"])
def test_lesion_equals_hand_written_forward_of_the_modified_block(model_x, block, path):
    model, x = model_x
    info = block_lookup(model_blocks(model), block)
    with torch.no_grad():
        block_in = manual_maps(model, x, upto=block)[block]["X"]
        expected = hand_tail(
            model, block, hand_lesion(model.get_submodule(info.module), block_in, path, CHANNELS, VALUES)
        )
        with lesioned(model, info, Lesion(block, path, CHANNELS, VALUES)):
            got = model(x)
        plain = model(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert (got - plain).abs().max() > 1e-3  # the lesion changed the logits


def test_o_lesion_holds_the_channels_exactly(model_x):
    model, x = model_x
    info = block_lookup(model_blocks(model), "1.1")
    seen = {}
    hook = model.layer2.register_forward_pre_hook(lambda m, a: seen.update(x=a[0].clone()))
    with torch.no_grad(), lesioned(model, info, Lesion("1.1", "O", CHANNELS, VALUES)):
        model(x)
    hook.remove()
    for c, v in zip(CHANNELS, VALUES):
        assert torch.all(seen["x"][:, c] == v)


def test_mean_constants_are_the_mean_of_the_clamped_activation():
    acts = torch.tensor([[1.0, -2.0, 3.0], [-1.0, 4.0, 5.0], [float("nan"), 9.0, 9.0]])
    means = clamped_means(acts)
    assert means.tolist() == [0.5, 2.0, 4.0]  # the NaN row (a skipped image) is left out
    assert lesion_constants("mean", [2, 0], means) == (4.0, 0.5)
    assert lesion_constants("zero", [2, 0], means) == (0.0, 0.0)


def test_bad_lesions_name_the_problem(model_x):
    model, _ = model_x
    info = block_lookup(model_blocks(model), "1.1")
    with pytest.raises(LesionError, match=r"block 1.1 has 64 channels; channel\(s\) \[64\] do not exist"):
        with lesioned(model, info, Lesion("1.1", "O", (64,), (0.0,))):
            pass
    with pytest.raises(LesionError, match="lesion path 'X' unknown"):
        Lesion("1.1", "X", (), ())
    with pytest.raises(LesionError, match="constants must be >= 0"):
        Lesion("1.1", "O", (1,), (-0.5,))
    with pytest.raises(LesionError, match="lesion kind 'half' unknown"):
        lesion_constants("half", [1], [0.0, 0.0])
