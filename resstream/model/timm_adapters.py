"""Block adapters (:class:`resstream.model.block_adapter.BlockAdapter`) for timm's residual blocks.

Imported by :func:`resstream.model.adapters.adapter_of` the first time it meets a module of timm, so
a torchvision run never imports timm.  Every timm block below ends its branch in ``drop_path``
(an ``nn.Identity`` or ``DropPath``, both the identity in eval mode) right before the sum, so B is
read at ``drop_path`` where the block has one as a module; timm's ResNet blocks build it only when
``drop_path_rate > 0``, and without it B is ``se`` (squeeze-excitation) or else the last BN.

==========================  =====================  =======================  =========
timm block class            B                      I                        after sum
==========================  =====================  =======================  =========
resnet.BasicBlock           drop_path / se / bn2   ``downsample`` or input  ReLU
resnet.Bottleneck           drop_path / se / bn3   ``downsample`` or input  ReLU
resnetv2.PreActBasic        drop_path              ``downsample`` or input  none
resnetv2.PreActBottleneck   drop_path              ``downsample`` or input  none
resnetv2.Bottleneck         drop_path              ``downsample`` or input  ReLU
convnext.ConvNeXtBlock      drop_path (gamma*mlp)  ``shortcut`` or input    none
regnet.Bottleneck           drop_path              ``downsample`` or input  ReLU
ConvBnAct,                  drop_path              input                    none
DepthwiseSeparableConv,
InvertedResidual,
EdgeResidual,
UniversalInvertedResidual
res2net.Bottle2neck         drop_path / se / bn3   ``downsample`` or input  ReLU
resnest.ResNestBottleneck   bn3                    ``downsample`` or input  ReLU
cspnet.BottleneckBlock      drop_path              input                    act3
cspnet.DarkBlock, EdgeBlock drop_path              input                    none
byobnet.BasicBlock,         drop_path              ``shortcut`` or input    act (none
BottleneckBlock, DarkBlock,                                                 if linear)
EdgeBlock
==========================  =====================  =======================  =========

A ResNetV2 pre-activation block's projection reads the *pre-activated* input (``norm1(x)``), so
its I is that projection's output, as for every block with a projection.  A RegNet block whose
``downsample`` is None has no sum (timm's ``linear_out`` blocks); an EfficientNet-family block
without ``has_skip`` has none either, nor a byobnet block whose ``shortcut`` is None.  Refused
(:data:`resstream.model.timm_models.REFUSED_BLOCKS`): RegNet's ``PreBottleneck``, RepVGG's and
MobileOne's re-parameterisable blocks; DLA as a whole.
"""

from __future__ import annotations

import torch
from timm.layers import BlurPool2d
from timm.models import _efficientnet_blocks as effnet
from timm.models import byobnet, convnext, cspnet, regnet, res2net, resnest, resnet, resnetv2

from resstream.model.block_adapter import BlockAdapter


def _is_module(m, attr: str) -> bool:
    return isinstance(getattr(m, attr, None), torch.nn.Module)


def _projection(attr: str):
    """The skip path's projection ``attr`` where it is a module other than the identity."""

    def skip(m) -> str | None:
        return attr if _is_module(m, attr) and not isinstance(getattr(m, attr), torch.nn.Identity) else None

    return skip


def _resnet_branch(m) -> str:
    if _is_module(m, "drop_path"):
        return "drop_path"
    if _is_module(m, "se"):
        return "se"
    return "bn3" if hasattr(m, "bn3") else "bn2"


def _branch_layers(m) -> list[torch.nn.Module]:
    """The block's modules outside its skip projection, in registration order."""
    skip = [getattr(m, a) for a in ("downsample", "shortcut") if _is_module(m, a)]
    inside_skip = {id(x) for s in skip for x in s.modules()}
    return [x for x in m.modules() if id(x) not in inside_skip and x is not m]


def _last(m, kinds) -> torch.nn.Module:
    return [x for x in _branch_layers(m) if isinstance(x, kinds)][-1]


def _out_channels(m) -> int:
    """Channels of B: the output channels of the branch's last conv or linear layer."""
    last = _last(m, (torch.nn.Conv2d, torch.nn.Linear))
    return last.out_channels if isinstance(last, torch.nn.Conv2d) else last.out_features


# Attributes holding a block's channel attention (squeeze-excitation and kin): its 1x1 convs act on a
# pooled vector, so the last of them is not the conv whose output the branch's last norm scales.
ATTENTION_ATTRS = ("se", "attn", "attn_last", "attn2", "attn3")


def _weight_layer(m) -> torch.nn.Module:
    """The branch's last conv (or linear) outside its channel attention."""
    inside_attention = {id(x) for a in ATTENTION_ATTRS if _is_module(m, a) for x in getattr(m, a).modules()}
    return [
        x
        for x in _branch_layers(m)
        if isinstance(x, (torch.nn.Conv2d, torch.nn.Linear)) and id(x) not in inside_attention
    ][-1]


def _branch_weights(m):
    """(per-channel scale, last weight): ConvNeXt's ``gamma`` where set, else the last norm's weight
    when it has B's channels, else ones; the branch's last conv (or linear) weight outside a
    squeeze-excitation."""
    last = _weight_layer(m)
    channels = _out_channels(m)
    gamma = getattr(m, "gamma", None)
    norms = [
        x
        for x in _branch_layers(m)
        if getattr(x, "weight", None) is not None
        and x.weight.dim() == 1
        and x.weight.shape[0] == channels
        and x is not last
    ]
    scale = (
        gamma if gamma is not None else norms[-1].weight if norms else torch.ones(channels, device=last.weight.device)
    )
    return scale.flatten(), last.weight


def _has_skip(m) -> bool:
    return bool(m.has_skip)


def _has_downsample(m) -> bool:
    return m.downsample is not None


def _always(m) -> bool:
    return True


def _drop_path(m) -> str:
    return "drop_path"


def _has_shortcut(m) -> bool:
    return m.shortcut is not None


def _final_activation(attr: str):
    """The class name of the activation module ``attr`` applied to the sum, None where it is the identity
    (byobnet's ``linear_out`` blocks)."""

    def after_sum(m) -> str | None:
        act = getattr(m, attr)
        return None if isinstance(act, torch.nn.Identity) else type(act).__name__

    return after_sum


def _adapter(has_sum, branch_out, skip_module, after_sum) -> BlockAdapter:
    return BlockAdapter(has_sum, branch_out, skip_module, after_sum, _out_channels, _branch_weights)


_RESNET = _adapter(_always, _resnet_branch, _projection("downsample"), "ReLU")
_EFFNET = _adapter(_has_skip, _drop_path, lambda m: None, None)
# byobnet's blocks: a shortcut of None means no sum (shapes differ, downsample=''), nn.Identity the identity
_BYOB = _adapter(_has_shortcut, _drop_path, _projection("shortcut"), _final_activation("act"))
# CSPNet's inner blocks sum their input (half of the stage's conv_exp output in a cross stage) and B
_CSP_DARK = _adapter(_always, _drop_path, lambda m: None, None)

TIMM_ADAPTERS: dict[type, BlockAdapter] = {
    resnet.BasicBlock: _RESNET,
    resnet.Bottleneck: _RESNET,
    resnetv2.PreActBasic: _adapter(_always, _drop_path, _projection("downsample"), None),
    resnetv2.PreActBottleneck: _adapter(_always, _drop_path, _projection("downsample"), None),
    resnetv2.Bottleneck: _adapter(_always, _drop_path, _projection("downsample"), "ReLU"),
    convnext.ConvNeXtBlock: _adapter(_always, _drop_path, _projection("shortcut"), None),
    regnet.Bottleneck: _adapter(_has_downsample, _drop_path, _projection("downsample"), "ReLU"),
    res2net.Bottle2neck: _RESNET,
    # ResNeSt applies its drop_path to the block input, not the branch: B is bn3 (after SplitAttn conv2)
    resnest.ResNestBottleneck: _adapter(_always, lambda m: "bn3", _projection("downsample"), "ReLU"),
    cspnet.BottleneckBlock: _adapter(_always, _drop_path, lambda m: None, _final_activation("act3")),
    cspnet.DarkBlock: _CSP_DARK,
    cspnet.EdgeBlock: _CSP_DARK,
    byobnet.BasicBlock: _BYOB,
    byobnet.BottleneckBlock: _BYOB,
    byobnet.DarkBlock: _BYOB,
    byobnet.EdgeBlock: _BYOB,
    effnet.ConvBnAct: _EFFNET,
    effnet.DepthwiseSeparableConv: _EFFNET,
    effnet.InvertedResidual: _EFFNET,
    effnet.EdgeResidual: _EFFNET,
    effnet.UniversalInvertedResidual: _EFFNET,
}
# timm's strided layers on the main path besides convs and max-pools: anti-aliasing (``aa``) blurs.
TIMM_STRIDED = [BlurPool2d, torch.nn.AvgPool2d]
