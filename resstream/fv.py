"""Feature visualizations: many units of one layer optimised together, each as if alone.

Spec §2 and §13.  Per unit (layer, channel):

* parameterisation: torch-lucent's ``param.image`` machinery (``fft_image``, then its colour
  decorrelation and sigmoid, as ``to_valid_rgb`` does), the spectrum drawn from N(0, 0.01²) with the
  unit's own seed;
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

Devices: torch-lucent 0.1.8 puts tensors on module-level devices fixed at import (``cuda:0``
whenever CUDA is visible) and its colour decorrelation always moves its matrix to ``cuda:0`` when
CUDA is visible.  Here every lucent tensor goes to the model's device: lucent's module devices are
set for the duration of a render, and the decorrelation is lucent's with the matrix on the image's
device.  tests/test_lucent_equivalence.py checks the whole loop against lucent's ``render_vis``.
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def lucent_on(device: torch.device):
    """Lucent's module-level devices (spatial parameterisation, transforms) set to ``device`` for
    the duration, then restored."""
    saved = lucent_spatial.device, lucent_transform.device
    lucent_spatial.device = lucent_transform.device = device
    try:
        yield
    finally:
        lucent_spatial.device, lucent_transform.device = saved


def decorrelated_rgb(image_f):
    """Lucent's ``to_valid_rgb(image_f, decorrelate=True)`` with its colour matrix on the image's
    device (lucent's own moves it to ``cuda:0`` whenever CUDA is visible)."""
    matrix = torch.tensor(lucent_color.color_correlation_normalized.T)

    def inner():
        image = image_f()
        rgb = torch.matmul(image.permute(0, 2, 3, 1), matrix.to(image.device)).permute(0, 3, 1, 2)
        return torch.sigmoid(rgb)

    return inner


def _unit_spectra(seeds, shape, device) -> torch.Tensor:
    """The fft_image initial spectrum, N(0, 0.01²), drawn per unit from its own generator."""
    parts = [torch.randn(*shape, generator=torch.Generator().manual_seed(s)) * 0.01 for s in seeds]
    return torch.stack(parts).to(device)


def _unit_images(seeds, device) -> tuple[torch.Tensor, object]:
    """Lucent's ``param.image(224, decorrelate=True)`` for a batch of units, each unit's spectrum
    drawn from its own seed: ``(spectrum parameter, image function)``.  Call inside :func:`lucent_on`."""
    (spectrum,), spatial_f = lucent_spatial.fft_image((len(seeds), 3, IMAGE_SIZE, IMAGE_SIZE))
    with torch.no_grad():
        spectrum.copy_(_unit_spectra(seeds, tuple(spectrum.shape[1:]), device))
    return spectrum, decorrelated_rgb(spatial_f)


class _UnitForward:
    """One step's forwards of a chunk: each unit's objective value and the summed loss.

    Units whose inputs differ in size run as separate sub-batches; cropped units run one per forward
    on CPU unless ``microbatch`` says otherwise (see :func:`render_units`)."""

    def __init__(self, model, blocks, ref, hook, channels, objective, rf_crop, bf16, microbatch, channels_last):
        self.device = next(model.parameters()).device
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.blocks, self.ref, self.hook, self.objective = blocks, ref, hook, objective
        self.bf16, self.microbatch, self.channels_last = bf16, microbatch, channels_last
        self.planner = CropPlanner(model, blocks, ref, hook) if (rf_crop and objective == "center") else None
        self.channel_index = torch.tensor(channels, device=self.device)

    def _groups(self, inputs) -> list[tuple[int, list[int]]]:
        k = len(inputs)
        by_size: dict[int, list[int]] = {}
        for i, x in enumerate(inputs):
            by_size.setdefault(x.shape[-1], []).append(i)
        groups = []
        for size, members in by_size.items():
            cropped = self.planner is not None and self.planner.plan(size) is not None
            per = self.microbatch or (1 if cropped and self.device.type == "cpu" else k)
            groups += [(size, members[j : j + per]) for j in range(0, len(members), per)]
        return groups

    def _objective(self, x, size, members) -> torch.Tensor:
        plan = self.planner.plan(size) if self.planner else None
        if plan is not None:
            x = x[..., plan.y0 : plan.y0 + plan.size, plan.y0 : plan.y0 + plan.size]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            act = block_taps(self.model, x, [self.ref], self.hook, self.blocks)[self.ref].float()
        chans = self.channel_index[torch.tensor(members, device=self.device)]
        rows = torch.arange(len(members), device=self.device)
        if self.objective == "channel":
            return act[rows, chans].mean(dim=(-2, -1))
        cy, cx = (plan.center, plan.center) if plan is not None else center_index(*act.shape[-2:])
        return act[rows, chans, cy, cx]

    def __call__(self, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        values = torch.empty(len(inputs), device=self.device)
        total = None
        for size, members in self._groups(inputs):
            value = self._objective(torch.cat([inputs[i] for i in members]), size, members)
            values[torch.tensor(members, device=self.device)] = value.detach()
            finite = torch.isfinite(value)
            # A NaN unit must not poison the others' gradients (they only share the sum).
            term = -torch.where(finite, value, torch.zeros_like(value)).sum()
            total = term if total is None else total + term
        return values, total


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
    with lucent_on(device):
        spectrum, image_f = _unit_images(seeds, device)
        optimizer = torch.optim.Adam([spectrum], lr=lr)
        transforms = lucent_transform.compose(lucent_transforms(jitter))
        rng = _UnitRandom(seeds)
        mean = torch.tensor(IMAGENET_MEAN, device=device)[:, None, None]
        std = torch.tensor(IMAGENET_STD, device=device)[:, None, None]
        forward = _UnitForward(model, blocks, ref, hook, channels, objective, rf_crop, bf16, microbatch, channels_last)

        curve = np.full((k, steps), np.nan, dtype=np.float32)
        nan_seen = np.zeros(k, dtype=bool)
        for step in range(steps):
            optimizer.zero_grad(set_to_none=True)
            images = image_f()
            # split, not images[i:i+1]: each slice's backward would build a full-batch gradient (O(k²)).
            inputs = [(rng.apply(i, transforms, image) - mean) / std for i, image in enumerate(torch.split(images, 1))]
            values, total = forward(inputs)
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
    status = ["nan" if nan_seen[i] else "ok" if np.nanmax(curve[i]) > 0 else "dead" for i in range(k)]
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
