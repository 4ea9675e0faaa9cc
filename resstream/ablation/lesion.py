"""Causal lesions of a residual block's channels, as forward hooks on the block's own submodules
(the model is never copied or edited; removing the hooks restores it).

A lesion sets channels to a constant per channel (mean ablation) or to 0 (zero ablation) at one of
three places of the block ``O = B + I`` (I: the skip path as it enters the sum):

* ``O``: the sum itself, before its ReLU (the follow-up paper's lesion, arXiv 2504.16290).  The
  constants are never negative (0, or a mean of values clamped at 0), so ``relu(v) = v`` and the
  lesion is written on the block's output, exactly;
* ``B``: the branch only (``bn2``/``bn3``'s output), before the sum;
* ``I``: the skip path only.  With a projection it is the projection's output; with an identity
  skip the same tensor also feeds the branch's first conv, so the skip's share of the sum is
  replaced by adding ``v - I_c`` to the branch's channel (the sum then reads ``B_c + v``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from resstream.ablation.settings import RESNET_BLOCKS
from resstream.base.errors import UserError
from resstream.model.blocks import BlockInfo

KINDS = ("mean", "zero")
PATHS = ("O", "B", "I")


class LesionError(UserError, ValueError):
    """A lesion that cannot be applied; the message names the block or channels and the fix."""


@dataclass(frozen=True)
class Lesion:
    """Channels of one block set to ``values`` (one per channel) at ``path``."""

    block: str
    path: str
    channels: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self):
        if self.path not in PATHS:
            raise LesionError(f"lesion path '{self.path}' unknown; use one of {', '.join(PATHS)}")
        if len(self.channels) != len(self.values):
            raise LesionError(
                f"lesion of block {self.block}: {len(self.channels)} channels but {len(self.values)} values"
            )
        if self.path == "O" and any(v < 0 for v in self.values):
            raise LesionError(f"lesion of block {self.block} at O: constants must be >= 0 (the sum's ReLU follows)")


def lesion_constants(kind: str, channels, means) -> tuple[float, ...]:
    """The value each lesioned channel is held at: 0 (``zero``) or the channel's entry of ``means``
    (``mean``: the dataset mean of its clamped-at-0 centre activation, :func:`clamped_means`)."""
    if kind not in KINDS:
        raise LesionError(f"lesion kind '{kind}' unknown; use one of {', '.join(KINDS)}")
    return tuple(0.0 if kind == "zero" else float(means[c]) for c in channels)


def clamped_means(centre_activations) -> torch.Tensor:
    """``[N, C]`` centre activations (NaN rows: skipped images) -> ``[C]`` mean over images of
    ``max(a, 0)``, as the author's mean ablation takes it."""
    a = torch.as_tensor(centre_activations, dtype=torch.float64)
    a = a[~torch.isnan(a).any(dim=1)]
    if a.shape[0] == 0:
        raise LesionError("mean ablation needs at least one image's activations; the activations file has none usable")
    return a.clamp(min=0).mean(dim=0)


def held_output(block_output: torch.Tensor, lesion: Lesion) -> torch.Tensor:
    """An ``O`` lesion applied to the unlesioned block's output: what the lesioned block returns
    (its ReLU passes the non-negative constants unchanged), without running the block again."""
    ch = torch.tensor(lesion.channels, dtype=torch.long, device=block_output.device)
    return _set_channels(block_output, ch, torch.tensor(lesion.values, dtype=torch.float64, device=block_output.device))


def _set_channels(t: torch.Tensor, channels: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    out = t.clone()
    out[:, channels] = values.to(t.dtype)[None, :, None, None].expand(t.shape[0], -1, t.shape[2], t.shape[3])
    return out


def check_lesion(info: BlockInfo, lesion: Lesion) -> None:
    """Refuse a lesion of a block that is not a ResNet block, or of channels it does not have."""
    if info.block_class not in RESNET_BLOCKS:
        raise LesionError(
            f"block {info.name} is a {info.block_class}; lesions support ResNet blocks "
            f"({', '.join(RESNET_BLOCKS)}). Fix: choose ResNet blocks in ablation.blocks"
        )
    bad = [c for c in lesion.channels if not 0 <= c < info.channels]
    if bad:
        raise LesionError(
            f"block {info.name} has {info.channels} channels; channel(s) {bad[:5]} do not exist. "
            f"Fix: list channels 0..{info.channels - 1}"
        )


def register_lesion(model: torch.nn.Module, info: BlockInfo, lesion: Lesion) -> list:
    """Register the hooks of ``lesion`` on ``model``'s block ``info``; returns their handles."""
    check_lesion(info, lesion)
    if not lesion.channels:
        return []
    block = model.get_submodule(info.module)
    branch = block.get_submodule(info.branch_out)
    ch = torch.tensor(lesion.channels, dtype=torch.long)
    val = torch.tensor(lesion.values, dtype=torch.float64)

    def held(t):
        return _set_channels(t, ch.to(t.device), val.to(t.device))

    if lesion.path == "O":
        return [block.register_forward_hook(lambda m, a, out: held(out))]
    if lesion.path == "B":
        return [branch.register_forward_hook(lambda m, a, out: held(out))]
    if info.downsample:
        skip = block.get_submodule(info.skip_module)
        return [skip.register_forward_hook(lambda m, a, out: held(out))]
    skip_input = {}

    def record(m, args):
        skip_input["x"] = args[0]

    def add_skip_share(m, a, out):
        x = skip_input.pop("x")
        return out + (held(x) - x)  # exactly 0 added to the untouched channels

    return [block.register_forward_pre_hook(record), branch.register_forward_hook(add_skip_share)]


@contextlib.contextmanager
def lesioned(model: torch.nn.Module, info: BlockInfo, lesion: Lesion):
    """``with lesioned(model, info, lesion): model(x)`` runs the lesioned network."""
    handles = register_lesion(model, info, lesion)
    try:
        yield model
    finally:
        for h in handles:
            h.remove()
