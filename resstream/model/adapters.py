"""Per block class of the supported families (:mod:`resstream.model.families`), where a block's I, B and O
live in a built network.

Each adapter answers, for one block class, the questions the study asks of a block: does it have a
residual sum, which submodule's *output* is the branch B exactly as it enters the sum, through which
submodule (if any) the skip path reaches the sum, and what follows the sum.  Dispatch is on the class
object, never on its name: MobileNetV2's and MobileNetV3's ``InvertedResidual`` share a name but
not their attributes (``conv`` vs ``block``).

Semantics as implemented (torchvision 0.29, eval mode; checked against hand forwards in
tests/model/test_families.py):

========================  ==================================  =========================  ==========
block class               B (hooked module's output)          I                          after sum
========================  ==================================  =========================  ==========
resnet.BasicBlock         ``bn2``                             ``downsample`` or input    ReLU
resnet.Bottleneck         ``bn3``                             ``downsample`` or input    ReLU
regnet.ResBottleneckBlock ``f.c`` (1x1 conv + BN)             ``proj`` or input          ReLU
convnext.CNBlock          ``stochastic_depth`` =              input                      none
                          ``layer_scale * block(x)``
mobilenetv2.InvertedRes.  ``conv`` (ends in BN)               input                      none
mobilenetv3.InvertedRes.  ``block`` (ends in BN)              input                      none
efficientnet.MBConv       ``block`` (ends in BN)              input                      none
efficientnet.FusedMBConv  ``block`` (BN; expand ratio 1:      input                      none
                          its single conv-BN-SiLU)
========================  ==================================  =========================  ==========

``block`` rather than its last BN: FusedMBConv with expand ratio 1 ends in an in-place SiLU, so its
last BN is not what enters the sum; StochasticDepth is the identity in eval mode.
"""

from __future__ import annotations

import torch
from torchvision.models import convnext, efficientnet, mobilenetv2, mobilenetv3, regnet, resnet

from resstream.model.block_adapter import BlockAdapter


def _resnet_bn(m) -> str:
    return "bn3" if isinstance(m, resnet.Bottleneck) else "bn2"


def _resnet_weights(m):
    bn = _resnet_bn(m)
    return getattr(m, bn).weight, getattr(m, "conv" + bn[2:]).weight


def _last_cna(m, attr: str):
    """The last Conv2dNormActivation of a MobileNetV3 / EfficientNet branch: (conv, norm)."""
    last = getattr(m, attr)[-1]
    return last[0], last[1]


def _cna_weights(attr: str):
    def weights(m):
        conv, norm = _last_cna(m, attr)
        return norm.weight, conv.weight

    return weights


def _always(m) -> bool:
    return True


def _uses_res_connect(m) -> bool:
    return bool(m.use_res_connect)


def _no_skip_module(m) -> None:
    return None


_RESNET = BlockAdapter(
    _always,
    _resnet_bn,
    lambda m: "downsample" if m.downsample is not None else None,
    "ReLU",
    lambda m: getattr(m, _resnet_bn(m)).num_features,
    _resnet_weights,
)
_INVERTED = dict(has_sum=_uses_res_connect, skip_module=_no_skip_module, after_sum=None)
# MobileNetV3, MBConv and FusedMBConv: the branch is `block`, ending in a conv-norm(-activation)
_BLOCK_BRANCH = BlockAdapter(
    branch_out=lambda m: "block",
    channels=lambda m: _last_cna(m, "block")[1].num_features,
    branch_weights=_cna_weights("block"),
    **_INVERTED,
)

ADAPTERS: dict[type, BlockAdapter] = {
    resnet.BasicBlock: _RESNET,
    resnet.Bottleneck: _RESNET,
    regnet.ResBottleneckBlock: BlockAdapter(
        _always,
        lambda m: "f.c",
        lambda m: "proj" if m.proj is not None else None,
        "ReLU",
        lambda m: m.f.c[1].num_features,
        lambda m: (m.f.c[1].weight, m.f.c[0].weight),
    ),
    convnext.CNBlock: BlockAdapter(
        _always,
        lambda m: "stochastic_depth",
        _no_skip_module,
        None,
        lambda m: m.layer_scale.shape[0],
        lambda m: (m.layer_scale.flatten(), m.block[5].weight),
    ),
    mobilenetv2.InvertedResidual: BlockAdapter(
        branch_out=lambda m: "conv",
        channels=lambda m: m.conv[-1].num_features,
        branch_weights=lambda m: (m.conv[-1].weight, m.conv[-2].weight),
        **_INVERTED,
    ),
    mobilenetv3.InvertedResidual: _BLOCK_BRANCH,
    efficientnet.MBConv: _BLOCK_BRANCH,
    efficientnet.FusedMBConv: _BLOCK_BRANCH,
}


def adapter_of(module: torch.nn.Module) -> BlockAdapter | None:
    adapter = ADAPTERS.get(type(module))
    if adapter is None and type(module).__module__.startswith("timm.") and not _TIMM_LOADED:
        _load_timm_adapters()
        adapter = ADAPTERS.get(type(module))
    return adapter


_TIMM_LOADED = False


def _load_timm_adapters() -> None:
    """timm's block adapters, registered the first time a timm module is met: a torchvision run
    never imports timm."""
    global _TIMM_LOADED
    from resstream.model.timm_adapters import TIMM_ADAPTERS, TIMM_STRIDED

    ADAPTERS.update(TIMM_ADAPTERS)
    STRIDED_LAYERS.extend(TIMM_STRIDED)
    _TIMM_LOADED = True


def branch_weights(block: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``(per-channel scale, weight)`` of a block's branch end: the last norm's gamma and the
    conv before it (ConvNeXt: ``layer_scale`` and the last Linear), one row per output channel."""
    return adapter_of(block).branch_weights(block)


def main_path(model: torch.nn.Module):
    """``(path, module)`` of every module on the main path, in registration order (which is the
    forward order in every supported family), leaving out what lies inside a skip-path projection
    (``downsample``, ``proj``: its window is inside the branch's) and inside a squeeze-excitation
    (its 1x1 convs act on a pooled vector); the squeeze-excitation module itself is yielded."""
    from torchvision.ops.misc import SqueezeExcitation

    skipped: list[str] = []
    for path, module in model.named_modules():
        if any(path.startswith(prefix) for prefix in skipped):
            continue
        yield path, module
        adapter = adapter_of(module)
        if adapter is not None and adapter.skip_module(module) is not None:
            skipped.append(f"{path}.{adapter.skip_module(module)}.")
        if isinstance(module, SqueezeExcitation):
            skipped.append(f"{path}.")


# Layers whose stride shrinks the main path's map (timm adds its anti-aliasing BlurPool2d).
STRIDED_LAYERS: list[type] = [torch.nn.Conv2d, torch.nn.MaxPool2d]


def layer_stride(module: torch.nn.Module) -> int:
    """The spatial stride of a strided layer (:data:`STRIDED_LAYERS`; 1 for anything else)."""
    if isinstance(module, tuple(STRIDED_LAYERS)):
        s = module.stride
        return int(s[0] if isinstance(s, tuple) else s)
    return 1
