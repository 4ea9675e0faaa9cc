"""timm models: every supported block kind's taps sum to its output (O = I + B, random weights, a
small input), the recorded tables match the networks, planning imports neither torch nor timm, and
the refusals and weights sources of a timm arch."""

import subprocess
import sys

import pytest
import torch

from resstream.model import timm_models
from resstream.model.blocks import B, D, O_POST, X, TapRef
from resstream.model.taps import block_taps
from resstream.model.walk import model_blocks

# (timm model, create_model kwargs) -> the block classes it holds with a residual sum
BLOCK_KINDS = {
    ("resnet18", ()): {"BasicBlock"},
    ("resnet18", (("drop_path_rate", 0.1),)): {"BasicBlock"},  # B read at drop_path
    ("seresnext26d_32x4d", ()): {"Bottleneck"},  # se as B, avg_down shortcut
    ("resnetaa34d", ()): {"BasicBlock"},  # anti-aliasing
    ("resnetv2_18", ()): {"PreActBasic"},
    ("resnetv2_50x1_bit", ()): {"PreActBottleneck"},
    ("resnetv2_50", (("preact", False),)): {"Bottleneck"},
    ("convnext_atto", ()): {"ConvNeXtBlock"},
    ("regnety_002", ()): {"Bottleneck"},
    ("mobilenetv3_small_050", ()): {"InvertedResidual"},
    ("efficientnet_b0", ()): {"InvertedResidual"},
    ("efficientnetv2_rw_t", ()): {"ConvBnAct", "EdgeResidual", "InvertedResidual"},
    ("mobilenetv4_conv_small", ()): {"UniversalInvertedResidual"},
}
# the module that applies the nonlinearity after the sum, where there is one: its input is the sum
AFTER_SUM_MODULE = {"BasicBlock": "act2", "Bottleneck": "act3"}


def _true_sums(model, blocks) -> tuple[dict, list]:
    """Each summing block's sum, read independently of the taps: the input of the activation that
    follows the sum, or else the block's output (nothing follows the sum)."""
    sums, handles = {}, []
    for info in blocks:
        if not info.has_sum:
            continue
        module = model.get_submodule(info.module)
        if info.after_sum:
            act = module.get_submodule(AFTER_SUM_MODULE[info.block_class])
            handles.append(act.register_forward_pre_hook(lambda m, a, n=info.name: sums.__setitem__(n, a[0].clone())))
        else:
            handles.append(module.register_forward_hook(lambda m, a, o, n=info.name: sums.__setitem__(n, o.clone())))
    return sums, handles


def randomise_scales(model) -> None:
    """timm initialises the last norm of a residual branch to zero (``zero_init_last``) and layer
    scales to 1e-6, which would make every B zero: give norms and layer scales random values."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rpartition(".")[2]
            if p.dim() == 1 and leaf in ("weight", "gamma"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.dim() == 1 and leaf == "bias":
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


@pytest.mark.parametrize("name,kwargs", list(BLOCK_KINDS), ids=lambda v: str(v) if isinstance(v, str) else "-".join(map(str, v)))
def test_every_timm_block_kind_sums_its_taps(name, kwargs):
    torch.manual_seed(0)
    model = timm_models.build(name, **dict(kwargs))
    randomise_scales(model)
    blocks = model_blocks(model)
    summing = [b for b in blocks if b.has_sum]
    assert {b.block_class for b in summing} == BLOCK_KINDS[(name, kwargs)]
    taps = [TapRef(b.name, t) for b in summing for t in (D if b.downsample else X, B, O_POST)]
    sums, handles = _true_sums(model, blocks)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = block_taps(model, x, taps, blocks=blocks)
        model(x)  # block_taps stops after the deepest tap: the hooks above saw the same forward
    for h in handles:
        h.remove()
    for b in summing:
        i, branch, out = (got[TapRef(b.name, t)] for t in (D if b.downsample else X, B, O_POST))
        total = sums[b.name]
        scale = total.abs().max().item() + 1e-12
        assert (i + branch - total).abs().max().item() <= 1e-5 * scale, f"{name} {b.name}: O != I + B"
        if b.after_sum:  # the in-place ReLU after `x += shortcut` did not reach the B tap
            assert (branch < 0).any() and torch.equal(out, torch.relu(total))
        else:
            assert torch.equal(out, total)
