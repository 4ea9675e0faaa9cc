"""Feature visualizations: many units of one layer optimised together, each as if alone.

Spec §2 and §13.  Per unit (layer, channel):

* parameterisation: torch-lucent's ``param.image`` machinery (``fft_image`` + ``to_valid_rgb`` with
  colour decorrelation), the spectrum drawn from N(0, 0.01²) with the unit's own seed;
* transforms: torch-lucent's (``pad``, ``jitter``, ``random_scale``, ``random_rotate``) per the
  layer's jitter, followed by ImageNet normalisation; the unit draws its own random values (its own
  numpy RandomState swapped in around the lucent call), so a unit's FV is the same alone or in a
  chunk of any size (bit-identical on CPU);
* objective: the centre neuron of the tapped tensor (copy taps, :mod:`resstream.taps`), or the
  mean over the whole channel map (``objective="channel"``, for display in Figs 1 and 6);
* Adam, lr 0.05, ``steps`` steps; weights frozen; the forward stops at the target block; optionally
  only the centre neuron's receptive field is computed (exact, :mod:`resstream.receptive_field`)
  and bf16 autocast (changes results, off by default).

Units whose input sizes differ in a step (random scale without crop, jitter < 4) run as separate
sub-batches of equal size; Adam is element-wise, so batching changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import UserError
from .blocks import BlockInfo, TapRef
from .data import IMAGENET_MEAN, IMAGENET_STD
from .receptive_field import CropPlanner
from .taps import block_taps, center_index

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # kornia 0.4.1 (lucent's pin) warns about torch APIs at import
    from lucent.optvis import transform as lucent_transform
    from lucent.optvis.param import color as lucent_color
    from lucent.optvis.param import spatial as lucent_spatial

log = logging.getLogger(__name__)

IMAGE_SIZE = 224
SCALES = (1, 0.975, 1.025, 0.95, 1.05)
ANGLES = tuple(range(-5, 6))
OBJECTIVES = ("center", "channel")


class FVError(UserError, RuntimeError):
    """An FV that cannot be computed or saved; the message names the unit or setting and the fix."""


def unit_seed(base_seed: int, layer: str, channel: int, objective: str = "center") -> int:
    """A unit's own seed: depends on nothing but the unit, never on its job or batch."""
    key = f"{base_seed}:{layer}:{channel}" + ("" if objective == "center" else f":{objective}")
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


def lucent_transforms(jitter: int) -> list:
    """Spec §2: j < 4 → scale + rotate, no crop (sizes 224-236); j ≥ 4 → pad(j, reflect), jitter(j),
    scale, rotate, jitter(j//2), centre crop 224."""
    scale = lucent_transform.random_scale(list(SCALES))
    rotate = lucent_transform.random_rotate(list(ANGLES))
    if jitter < 4:
        return [scale, rotate]
    steps = [lucent_transform.pad(jitter, mode="reflect"), lucent_transform.jitter(jitter), scale, rotate]
    if jitter // 2 > 1:
        steps.append(lucent_transform.jitter(jitter // 2))
    steps.append(_center_crop(IMAGE_SIZE))
    return steps


def _center_crop(size: int):
    # Same arithmetic as torchvision's CenterCrop (the author's HEAD), for square tensors.
    def inner(t):
        h, w = t.shape[-2:]
        top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
        return t[..., top : top + size, left : left + size]

    return inner


@dataclass
class FVResult:
    layer: str
    channels: list[int]
    objective: str
    seeds: list[int]
    images: np.ndarray  # [k, 3, 224, 224] float32 in [0, 1], after the last step
    final_activation: np.ndarray  # [k] objective value at the last step
    curve: np.ndarray  # [k, steps] objective value at every step
    status: list[str]  # ok | dead | nan
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    def png_arrays(self) -> np.ndarray:
        """[k, 224, 224, 3] uint8 as the author saved them: (img*255).astype(uint8), truncating."""
        return (np.transpose(self.images, (0, 2, 3, 1)) * 255).astype(np.uint8)


class _UnitRandom:
    """Each unit's own numpy RandomState, swapped in around lucent's transform calls (they draw
    from numpy's global generator)."""

    def __init__(self, seeds):
        self.states = [np.random.RandomState(s ^ 0x5EED).get_state() for s in seeds]

    def apply(self, i, fn, *args):
        outer = np.random.get_state()
        np.random.set_state(self.states[i])
        try:
            return fn(*args)
        finally:
            self.states[i] = np.random.get_state()
            np.random.set_state(outer)


def _unit_spectra(seeds, shape, device) -> torch.Tensor:
    """The fft_image initial spectrum, N(0, 0.01²), drawn per unit from its own generator."""
    parts = [torch.randn(*shape, generator=torch.Generator().manual_seed(s)) * 0.01 for s in seeds]
    return torch.stack(parts).to(device)


def render_units(
    model: torch.nn.Module,
    blocks: list[BlockInfo],
    layer: str,
    ref: TapRef,
    channels: list[int],
    *,
    steps: int = 2560,
    lr: float = 0.05,
    jitter: int = 0,
    hook: str = "intended",
    seed: int = 0,
    rf_crop: bool = True,
    bf16: bool = False,
    objective: str = "center",
    microbatch: int | None = None,
    channels_last: bool = True,
    log_every: int = 50,
    progress=None,
) -> FVResult:
    """Optimise one image per channel of ``layer`` and return the images, curves and status.

    ``microbatch``: most units per forward.  CPU convolution kernels pick different algorithms
    for different batch sizes on small (receptive-field cropped) inputs, which changes the last
    bits, and Adam turns last-bit differences into visible ones.  So the default (None) runs
    cropped units one per forward on CPU, and full-size (224 px) units, whose kernels give the
    same bits at any batch size (tested), as one batch per input size: a unit's FV is then
    bit-identical in any chunk.  On a GPU the default is the whole chunk: batching is the big
    lever there.  ``channels_last`` runs convolutions in NHWC (×1.1-1.4 on CPU)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"FV objective '{objective}' unknown; one of {', '.join(OBJECTIVES)}")
    device = next(model.parameters()).device
    k = len(channels)
    seeds = [unit_seed(seed, layer, c, objective) for c in channels]
    t0 = time.time()

    # Lucent's param.image(224, decorrelate=True) for a batch of k, spectrum re-drawn per unit.
    lucent_spatial.device = device
    (spectrum,), spatial_f = lucent_spatial.fft_image((k, 3, IMAGE_SIZE, IMAGE_SIZE))
    with torch.no_grad():
        spectrum.copy_(_unit_spectra(seeds, tuple(spectrum.shape[1:]), device))
    image_f = lucent_color.to_valid_rgb(spatial_f, decorrelate=True)
    optimizer = torch.optim.Adam([spectrum], lr=lr)

    transforms = lucent_transform.compose(lucent_transforms(jitter))
    rng = _UnitRandom(seeds)
    mean = torch.tensor(IMAGENET_MEAN, device=device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=device)[:, None, None]
    planner = CropPlanner(model, blocks, ref, hook) if (rf_crop and objective == "center") else None
    channel_index = torch.tensor(channels, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)

    curve = np.full((k, steps), np.nan, dtype=np.float32)
    nan_seen = np.zeros(k, dtype=bool)
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        images = image_f()
        # split, not images[i:i+1]: each slice's backward would build a full-batch gradient (O(k²)).
        inputs = [(rng.apply(i, transforms, image) - mean) / std for i, image in enumerate(torch.split(images, 1))]
        by_size: dict[int, list[int]] = {}
        for i, x in enumerate(inputs):
            by_size.setdefault(x.shape[-1], []).append(i)
        groups = []
        for size, members in by_size.items():
            cropped = planner is not None and planner.plan(size) is not None
            per = microbatch or (1 if cropped and device.type == "cpu" else k)
            groups += [(size, members[j : j + per]) for j in range(0, len(members), per)]
        values = torch.empty(k, device=device)
        total = None
        for size, members in groups:
            x = torch.cat([inputs[i] for i in members])
            idx = torch.tensor(members, device=device)
            plan = planner.plan(size) if planner else None
            if plan is not None:
                x = x[..., plan.y0 : plan.y0 + plan.size, plan.y0 : plan.y0 + plan.size]
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                act = block_taps(model, x, [ref], hook, blocks)[ref].float()
            chans = channel_index[idx]
            rows = torch.arange(len(members), device=device)
            if objective == "channel":
                value = act[rows, chans].mean(dim=(-2, -1))
            else:
                cy, cx = (plan.center, plan.center) if plan is not None else center_index(*act.shape[-2:])
                value = act[rows, chans, cy, cx]
            values[idx] = value.detach()
            finite = torch.isfinite(value)
            # A NaN unit must not poison the others' gradients (they only share the sum).
            term = -torch.where(finite, value, torch.zeros_like(value)).sum()
            total = term if total is None else total + term
        total.backward()
        with torch.no_grad():
            bad = ~torch.isfinite(spectrum.grad.flatten(1)).all(dim=1)
            spectrum.grad[bad] = 0
        try:
            optimizer.step()
        except RuntimeError as exc:  # e.g. an lr so large that Adam's step overflows float32
            raise FVError(f"FV of {layer} failed at step {step + 1} with lr {lr}: {exc}. Fix: lower fv.lr") from None
        vals = values.cpu().numpy()
        curve[:, step] = vals
        nan_seen |= ~np.isfinite(vals) | bad.cpu().numpy()
        if progress is not None and ((step + 1) % log_every == 0 or step + 1 == steps):
            progress(step + 1, steps, time.time() - t0, vals)

    with torch.no_grad():
        final_images = image_f().float().cpu().numpy()
    nan_seen |= ~np.isfinite(final_images).reshape(k, -1).all(axis=1)
    status = []
    for i in range(k):
        if nan_seen[i]:
            status.append("nan")
        elif not np.nanmax(curve[i]) > 0:
            status.append("dead")
        else:
            status.append("ok")
    return FVResult(
        layer=layer,
        channels=list(channels),
        objective=objective,
        seeds=seeds,
        images=final_images.astype(np.float32),
        final_activation=curve[:, -1].copy(),
        curve=curve,
        status=status,
        settings=dict(
            steps=steps, lr=lr, jitter=jitter, hook=hook, seed=seed, rf_crop=rf_crop, bf16=bf16,
            objective=objective, microbatch=microbatch, channels_last=channels_last, device=str(device),
        ),
        seconds=time.time() - t0,
    )
