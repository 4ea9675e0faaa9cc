"""The input window a centre neuron sees, so FV steps can run on that window alone.

Cropping the input to the centre neuron's receptive field (aligned to the network's total stride,
so every intermediate grid is a sub-grid of the original) gives exactly the same centre
activation and input gradient while computing a fraction of the maps: ×3-4 in layer1-2 on a CPU
(docs/performance.md#feature-visualizations).  That holds only while every layer up to the tap is local.  A layer that
mixes the whole map (squeeze-excitation's global pooling in RegNetY, MobileNetV3 and EfficientNet,
any adaptive pooling, a norm over space) makes the centre neuron depend on the whole image:
:func:`crop_refusal` finds such a layer from the model's modules, and :meth:`CropPlanner.plan` falls back to
the full forward there (and logs why).  Where the structure allows the crop, the equality is still
verified numerically once per (layer, input size), with tolerances relative to the activations'
magnitude, and the crop refused when it does not hold.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torchvision.ops.misc import SqueezeExcitation

from resstream.model.adapters import main_path
from resstream.model.blocks import BlockInfo, TapRef, X, block_lookup

log = logging.getLogger(__name__)
GLOBAL_LAYERS = (
    SqueezeExcitation,
    torch.nn.AdaptiveAvgPool2d,
    torch.nn.AdaptiveMaxPool2d,
    torch.nn.GroupNorm,
    torch.nn.InstanceNorm2d,
)


@dataclass(frozen=True)
class CropPlan:
    y0: int  # first row (and column) of the crop in the full input
    size: int  # crop side length
    center: int  # centre neuron's index in the cropped output map (both axes)


def _path_modules(model: torch.nn.Module, blocks: list[BlockInfo], ref: TapRef):
    """``(path, module)`` on the main path from the input up to the tap: through the tap's block,
    or up to (not into) it for the block's input X."""
    target = block_lookup(blocks, ref.block).module
    entered = False
    for path, module in main_path(model):
        inside = path == target or path.startswith(target + ".")
        if inside and ref.tensor == X or entered and not inside:
            return
        entered = entered or inside
        yield path, module


def _is_global(module: torch.nn.Module) -> bool:
    if isinstance(module, GLOBAL_LAYERS):
        return True
    return isinstance(module, torch.nn.LayerNorm) and len(module.normalized_shape) > 1  # over space too


def crop_refusal(model: torch.nn.Module, blocks: list[BlockInfo], ref: TapRef) -> str | None:
    """Why the receptive-field crop cannot be exact for this tap (a layer on the path to it that
    mixes the whole map), or None.  The numeric check of :func:`verify_plan` is the second line."""
    for path, module in _path_modules(model, blocks, ref):
        if _is_global(module):
            return f"{path} ({type(module).__name__}) mixes the whole map"
    return None


def _conv_path(model: torch.nn.Module, blocks: list[BlockInfo], ref: TapRef) -> list[tuple[int, int, int]]:
    """(effective kernel, stride, padding) of every conv and max-pool on the main path from the
    input to the tap: the branch's window contains the skip projection's, so it bounds every tap."""
    path = []
    for _, m in _path_modules(model, blocks, ref):
        if isinstance(m, torch.nn.Conv2d):
            path.append((m.dilation[0] * (m.kernel_size[0] - 1) + 1, m.stride[0], m.padding[0]))
        elif isinstance(m, torch.nn.MaxPool2d):
            pick = lambda v: v[0] if isinstance(v, tuple) else v  # noqa: E731
            path.append((pick(m.dilation) * (pick(m.kernel_size) - 1) + 1, pick(m.stride), pick(m.padding)))
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


def _numeric_mismatch(model, blocks, ref: TapRef, size: int, hook_mode: str, plan: CropPlan) -> str | None:
    """Compare the cropped and the full forward on a random input: the centre activations, the
    input gradient inside the window (tolerances relative to their largest magnitude: at random
    init MobileNet/EfficientNet activations are ~1e-3) and a gradient of exactly 0 outside it."""
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
    xc = x.detach()[window].clone().requires_grad_(True)
    part = block_taps(model, xc, [ref], hook_mode, blocks)[ref]
    part[0, :, plan.center, plan.center].sum().backward()
    act_full, act_part = full[0, :, c, c].detach(), part[0, :, plan.center, plan.center].detach()
    act_diff = float((act_part - act_full).abs().max())
    grad_diff = float((xc.grad - g_full).abs().max())
    if act_diff > 1e-4 * max(float(act_full.abs().max()), 1e-30):
        return f"centre activations differ by {act_diff:.3g}"
    if grad_diff > 1e-3 * max(float(g_full.abs().max()), 1e-30):
        return f"input gradients differ by {grad_diff:.3g}"
    if float(g_outside.abs().max()) != 0.0:
        return f"the input gradient reaches outside the window ({float(g_outside.abs().max()):.3g})"
    return None


def _size_decision(model, blocks, ref: TapRef, size: int, hook_mode: str) -> tuple[CropPlan | None, str | None]:
    """For a tap that :func:`crop_refusal` accepts: ``(plan, None)`` when the crop is exact at this
    input size, else ``(None, why)``: a window that covers most of the image, or the numeric check
    failing."""
    plan = _plan(model, blocks, ref, size)
    if plan is None:
        return None, "the receptive field covers most of the image"
    mismatch = _numeric_mismatch(model, blocks, ref, size, hook_mode, plan)
    return (None, f"numeric check failed: {mismatch}") if mismatch else (plan, None)


def verify_plan(model, blocks, ref: TapRef, size: int, hook_mode: str) -> CropPlan | None:
    """The crop plan for one input size, or None where it is refused (:class:`CropPlanner`)."""
    return CropPlanner(model, blocks, ref, hook_mode).plan(size)


class CropPlanner:
    """Verified crop plans per input size for one (model, tap), computed once each; a refusal is
    logged once with its reason (the FV then runs the full forward).  A layer that mixes the whole
    map refuses the crop at every size: that is decided once, here, not per size."""

    def __init__(self, model, blocks, ref: TapRef, hook_mode: str):
        self.model, self.blocks, self.ref, self.hook_mode = model, blocks, ref, hook_mode
        self._plans: dict[int, CropPlan | None] = {}
        self._refusal = crop_refusal(model, blocks, ref)
        if self._refusal is not None:
            log.info("receptive-field crop of %s:%s not used (%s): full forward", ref.block, ref.tensor, self._refusal)

    def plan(self, size: int) -> CropPlan | None:
        if self._refusal is not None:
            return None
        if size not in self._plans:
            plan, why = _size_decision(self.model, self.blocks, self.ref, size, self.hook_mode)
            if why is not None:
                log.info(
                    "receptive-field crop of %s:%s at %d px not used (%s): full forward",
                    self.ref.block,
                    self.ref.tensor,
                    size,
                    why,
                )
            self._plans[size] = plan
        return self._plans[size]


def cell_window(model: torch.nn.Module, blocks: list[BlockInfo], ref: TapRef, index: int, size: int) -> tuple[int, int]:
    """The input rows (or columns) ``[lo, hi)`` that cell ``index`` of the tap's map sees along one
    axis, clipped to an input of ``size`` pixels: the patch an exemplar shows around a unit's peak."""
    lo, hi, _ = receptive_window(_conv_path(model, blocks, ref), index)
    return max(lo, 0), min(hi, size - 1) + 1
