"""The input window a centre neuron sees, so FV steps can run on that window alone.

Cropping the input to the centre neuron's receptive field (aligned to the network's total stride,
so every intermediate grid is a sub-grid of the original) gives exactly the same centre
activation and input gradient while computing a fraction of the maps: ×3-4 in layer1-2 on a CPU
(spec PERFORMANCE.md).  :func:`crop_plan` verifies the equality numerically once per
(layer, input size) and refuses the crop when it does not hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from resstream.model.blocks import BlockInfo, TapRef, block_lookup


@dataclass(frozen=True)
class CropPlan:
    y0: int  # first row (and column) of the crop in the full input
    size: int  # crop side length
    center: int  # centre neuron's index in the cropped output map (both axes)


def _conv_path(model: torch.nn.Module, blocks: list[BlockInfo], ref: TapRef) -> list[tuple[int, int, int]]:
    """(kernel, stride, padding) of every layer on the longest path from the input to the tap."""
    path = [(model.conv1.kernel_size[0], model.conv1.stride[0], model.conv1.padding[0])]
    mp = model.maxpool
    path.append((mp.kernel_size, mp.stride, mp.padding))
    target = block_lookup(blocks, ref.block)
    for info in blocks[: target.index + 1]:
        if info.name == ref.block and ref.kind == "X":
            break
        block = model.get_submodule(info.module)
        convs = sorted((n, m) for n, m in block.named_children() if n.startswith("conv"))
        # The main branch is a superset of the downsample's window, so it bounds every tap.
        for _, conv in convs:
            path.append((conv.kernel_size[0], conv.stride[0], conv.padding[0]))
    return path


def _output_size(size: int, path) -> int:
    for k, s, p in path:
        size = (size + 2 * p - k) // s + 1
    return size


def receptive_window(path, out_index: int) -> tuple[int, int, int]:
    """Input interval [lo, hi] (inclusive; may reach into padding) of output ``out_index``, and the
    total stride."""
    lo = hi = out_index
    for k, s, p in reversed(path):
        lo, hi = lo * s - p, hi * s - p + k - 1
    return lo, hi, math.prod(s for _, s, _ in path)


def _plan(model, blocks, ref: TapRef, size: int) -> CropPlan | None:
    path = _conv_path(model, blocks, ref)
    out = _output_size(size, path)
    c = out // 2
    lo, hi, stride = receptive_window(path, c)
    y0 = (max(lo, 0) // stride) * stride
    y1 = min(hi, size - 1) + 1
    crop = y1 - y0
    if crop * crop > 0.8 * size * size:  # not worth it: the window is most of the image
        return None
    return CropPlan(y0=y0, size=crop, center=c - y0 // stride)


def verify_plan(model, blocks, ref: TapRef, size: int, hook_mode: str) -> CropPlan | None:
    """The crop plan for one input size, kept only if the cropped forward gives the same centre
    activations and the same input gradient as the full one on a random input."""
    plan = _plan(model, blocks, ref, size)
    if plan is None:
        return None
    from resstream.model.taps import block_taps  # local: taps imports nothing from here

    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(size)
    x = torch.randn(1, 3, size, size, generator=gen).to(device).requires_grad_(True)
    full = block_taps(model, x, [ref], hook_mode, blocks)[ref]
    c = full.shape[-1] // 2
    full[0, :, c, c].sum().backward()
    window = (slice(None), slice(None), slice(plan.y0, plan.y0 + plan.size), slice(plan.y0, plan.y0 + plan.size))
    g_full = x.grad[window].clone()
    g_outside = x.grad.clone()
    g_outside[window] = 0
    outside = g_outside.abs().max()
    xc = x.detach()[window].clone().requires_grad_(True)
    part = block_taps(model, xc, [ref], hook_mode, blocks)[ref]
    part[0, :, plan.center, plan.center].sum().backward()
    same_act = torch.allclose(part[0, :, plan.center, plan.center], full[0, :, c, c], atol=1e-4, rtol=1e-4)
    same_grad = torch.allclose(xc.grad, g_full, atol=1e-5, rtol=1e-3) and float(outside) == 0.0
    return plan if same_act and same_grad else None


class CropPlanner:
    """Verified crop plans per input size for one (model, tap), computed once each."""

    def __init__(self, model, blocks, ref: TapRef, hook_mode: str):
        self.model, self.blocks, self.ref, self.hook_mode = model, blocks, ref, hook_mode
        self._plans: dict[int, CropPlan | None] = {}

    def plan(self, size: int) -> CropPlan | None:
        if size not in self._plans:
            self._plans[size] = verify_plan(self.model, self.blocks, self.ref, size, self.hook_mode)
        return self._plans[size]
