"""Feature visualizations: many units of one layer optimised together, each as if alone.

docs/method.md#feature-visualizations.  Per unit (layer, channel):

* parameterisation: torch-lucent's ``param.image`` machinery (``fft_image``, then its colour
  decorrelation and sigmoid, as ``to_valid_rgb`` does), the spectrum drawn from N(0, 0.01²) with the
  unit's own seed;
* transforms: torch-lucent's (``pad``, ``jitter``, ``random_scale``, ``random_rotate``) per the
  layer's jitter, followed by ImageNet normalisation; the unit draws its own random values (its own
  numpy RandomState swapped in around the lucent call), so a unit's FV is the same alone or in a
  chunk of any size (bit-identical on CPU);
* objective: the centre neuron of the tapped tensor (copy taps, :mod:`resstream.model.taps`), or the
  mean over the whole channel map (``objective="channel"``, for display in Figs 1 and 6);
* Adam, lr 0.05, ``steps`` steps; weights frozen; the forward stops at the target block; optionally
  only the centre neuron's receptive field is computed (exact, :mod:`resstream.model.receptive_field`)
  and bf16 autocast (changes results, off by default).

Units whose input sizes differ in a step (random scale without crop, jitter < 4) run as separate
sub-batches of equal size; Adam is element-wise, so batching changes nothing.

A step has two stages: each microbatch of units runs its forward and its backward to its own
input, and its graph is freed (so memory holds one microbatch of activations); then one backward
through the transforms, colour decorrelation and fft gives the spectrum's gradient.  On CPU this
gives the same bits as one backward of the summed objective.  Nothing inside the step loop reads a
value back from the device: the curve and the NaN flags stay on the device and are fetched every
``log_every`` steps (progress) and at the end.

GPU path (see :mod:`resstream.fv.memory` and :mod:`resstream.fv.transforms`): the whole chunk per
forward, or the largest equal microbatches that the device's free memory holds, halved if CUDA
still runs out of memory; the transforms applied to the whole chunk at once, with fixed-order
backward passes; convolutions in full fp32 unless ``tf32``; cuDNN's deterministic algorithms
(:func:`gpu_math`).  Meant to make a GPU run repeatable bit for bit for a given chunking (same
GPU model, driver and torch); a GPU's results are not the CPU's bits.

Devices: torch-lucent 0.1.8 puts tensors on module-level devices fixed at import (``cuda:0``
whenever CUDA is visible) and its colour decorrelation always moves its matrix to ``cuda:0`` when
CUDA is visible.  Here every lucent tensor goes to the model's device: lucent's module devices are
set for the duration of a render, and the decorrelation is lucent's with the matrix on the image's
device.  tests/fv/test_lucent_equivalence.py checks the whole loop against lucent's ``render_vis``.
Sizing and transforms live in :mod:`resstream.fv.memory` and :mod:`resstream.fv.transforms`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from resstream.base.errors import UserError
from resstream.fv import memory as fv_memory
from resstream.fv.transforms import (
    IMAGE_SIZE,
    BatchedTransforms,
    InputGroup,
    UnitRandom,
    index_on,
    lucent_transforms,
    per_unit_inputs,
)
from resstream.model.blocks import BlockInfo, TapRef
from resstream.model.preprocessing import TORCHVISION, Preprocessing
from resstream.model.receptive_field import CropPlanner
from resstream.model.taps import block_taps, center_index

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # kornia 0.4.1 (lucent's pin) warns about torch APIs at import
    from lucent.optvis import transform as lucent_transform
    from lucent.optvis.param import color as lucent_color
    from lucent.optvis.param import spatial as lucent_spatial

log = logging.getLogger(__name__)

OBJECTIVES = ("center", "channel")


class FVError(UserError, RuntimeError):
    """An FV that cannot be computed or saved; the message names the unit or setting and the fix."""


def unit_seed(base_seed: int, layer: str, channel: int, objective: str = "center") -> int:
    """A unit's own seed: depends on nothing but the unit, never on its job or batch."""
    key = f"{base_seed}:{layer}:{channel}" + ("" if objective == "center" else f":{objective}")
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


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
    preprocessing: dict = field(default_factory=dict)  # the mean/std the images were normalised with

    def png_arrays(self) -> np.ndarray:
        """[k, 224, 224, 3] uint8 as the author saved them: (img*255).astype(uint8), truncating."""
        return (np.transpose(self.images, (0, 2, 3, 1)) * 255).astype(np.uint8)


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


@contextlib.contextmanager
def gpu_math(device: torch.device, tf32: bool):
    """On CUDA: TF32 for convolutions and matmuls as ``tf32`` says (torch's own default turns it on
    for convolutions), cuDNN's deterministic algorithms, and torch's deterministic mode in its
    warn-only form (an operation with no deterministic CUDA kernel warns in the job's log instead of
    failing); restored afterwards.  cuBLAS is deterministic with a fixed workspace
    (``CUBLAS_WORKSPACE_CONFIG``, read when the process first uses cuBLAS)."""
    if device.type != "cuda":
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32, cudnn.deterministic, cudnn.benchmark
    saved_mode = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn.allow_tf32 = matmul.allow_tf32 = tf32
    cudnn.deterministic, cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32, cudnn.deterministic, cudnn.benchmark = saved
        torch.use_deterministic_algorithms(saved_mode[0], warn_only=saved_mode[1])


def crop_planner(model, blocks, ref: TapRef, hook: str, rf_crop: bool, objective: str) -> CropPlanner | None:
    """The receptive-field crop of a render, or None for the full 224 px input: only the centre
    objective can be cropped (a channel objective reads the whole map)."""
    return CropPlanner(model, blocks, ref, hook) if (rf_crop and objective == "center") else None


class ChannelMaps:
    """The default readout of a render: each unit's map is its channel of the tapped tensor.

    A readout is any object with ``taps`` (the tensors the forward must record) and a call
    ``(taps {TapRef: [n, C, H, W]}, units [n]) -> [n, H, W]`` giving each unit's own map, on the
    tapped tensors' grid; the objective is its centre cell (or its mean).  Another readout (e.g. a
    dictionary feature read from a block's I and B) reuses the whole engine unchanged."""

    def __init__(self, ref: TapRef):
        self.ref, self.taps = ref, [ref]

    def __call__(self, taps: dict, units: torch.Tensor) -> torch.Tensor:
        return taps[self.ref][torch.arange(len(units), device=units.device), units]


class _UnitForward:
    """One step's network passes for a chunk: per microbatch, the forward to each unit's objective
    and the backward to the microbatch's input (its graph then freed); then one backward through
    the transforms to the spectrum.  Returns each unit's objective value (on the device).

    Units per forward: :func:`resstream.fv.memory.units_per_forward` (CPU: cropped units one by
    one unless ``microbatch``; GPU: what free memory holds).  When CUDA runs out of memory anyway,
    the step is redone with half as many units per forward, for the rest of the run."""

    def __init__(
        self,
        model,
        blocks,
        ref,
        hook,
        channels,
        objective,
        rf_crop,
        bf16,
        microbatch,
        channels_last,
        jitter,
        readout=None,
    ):
        self.device = next(model.parameters()).device
        self.readout = readout or ChannelMaps(ref)
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.blocks, self.ref, self.hook, self.objective = blocks, ref, hook, objective
        self.bf16, self.microbatch, self.channels_last = bf16, microbatch, channels_last
        self.planner = crop_planner(model, blocks, ref, hook, rf_crop, objective)
        self.channel_index = torch.tensor(channels, device=self.device)
        self.k = len(channels)
        self.free = fv_memory.free_bytes(self.device)
        self.reserved = self.k * fv_memory.transform_bytes_per_unit(jitter) if self.free is not None else 0
        self.fit: dict[int, int] = {}  # units that fit in memory per forward input size (GPU)
        self.cap: int | None = None  # units per forward after running out of memory
        self.oom_splits: list[list[int]] = []  # [step, units per forward] each time that happened

    def _plan(self, size: int):
        return self.planner.plan(size) if self.planner else None

    def _per_forward(self, group: InputGroup) -> int:
        plan = self._plan(group.size)
        side = plan.size if plan is not None else group.size
        if self.free is not None and side not in self.fit:
            need = fv_memory.saved_bytes_per_unit(self.model, self.blocks, self.ref, self.hook, side)
            self.fit[side] = fv_memory.units_that_fit(need, self.free, self.reserved)
        per = fv_memory.units_per_forward(len(group.members), plan is not None, self.microbatch, self.fit.get(side))
        return min(per, self.cap) if self.cap else per

    def _objective(self, x, size, index) -> torch.Tensor:
        plan = self._plan(size)
        if plan is not None:
            x = x[..., plan.y0 : plan.y0 + plan.size, plan.y0 : plan.y0 + plan.size]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            taps = block_taps(self.model, x, self.readout.taps, self.hook, self.blocks)
        unit_maps = self.readout({r: t.float() for r, t in taps.items()}, self.channel_index[index])  # [n, H, W]
        if self.objective == "channel":
            return unit_maps.mean(dim=(-2, -1))
        cy, cx = (plan.center, plan.center) if plan is not None else center_index(*unit_maps.shape[-2:])
        return unit_maps[:, cy, cx]

    def _input_gradients(self, groups: list[InputGroup]):
        values = torch.empty(self.k, device=self.device)
        parts, grads = [], []
        for group in groups:
            start = 0
            for n in fv_memory.split_sizes(len(group.members), self._per_forward(group)):
                members, part = group.members[start : start + n], group.x[start : start + n]
                start += n
                leaf, index = part.detach().requires_grad_(True), index_on(self.device, members)
                value = self._objective(leaf, group.size, index)
                # A NaN unit must not poison the others' gradients (they share the sum).
                (-torch.where(torch.isfinite(value), value, torch.zeros_like(value)).sum()).backward()
                values[index] = value.detach()
                parts.append(part)
                grads.append(leaf.grad)
        return values, parts, grads

    def __call__(self, groups: list[InputGroup], step: int) -> torch.Tensor:
        while True:
            per_before = max(self._per_forward(g) for g in groups)
            try:
                values, parts, grads = self._input_gradients(groups)
                break
            except torch.OutOfMemoryError:
                pass  # retried below, once the failed pass's tensors are gone
            self._halve(per_before, step)
        torch.autograd.backward(parts, grads)
        return values

    def _halve(self, per: int, step: int) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if per <= 1:
            raise FVError(
                f"{self.device} ran out of memory for a single unit's forward and backward. "
                "Fix: free the device's memory (other processes), or set model.device: cpu"
            )
        self.cap = per // 2
        self.oom_splits.append([step, self.cap])
        log.warning(
            "out of memory on %s with %d units per forward: %d from step %d on", self.device, per, self.cap, step + 1
        )

    def memory_settings(self) -> dict:
        """What decided the microbatches (recorded in the results: a GPU run's bits depend on it)."""
        if self.free is None and not self.oom_splits:
            return {}
        return {
            "free_bytes": self.free,
            "units_that_fit": {str(s): n for s, n in self.fit.items()},
            "oom_splits": self.oom_splits,
        }


def render_units(
    model: torch.nn.Module,
    blocks: list[BlockInfo],
    layer: str,
    ref: TapRef,
    channels: list[int],
    *,
    steps: int,
    jitter: int,
    lr: float,
    hook: str,
    seed: int,
    rf_crop: bool,
    bf16: bool,
    microbatch: int | None,
    channels_last: bool,
    tf32: bool,
    objective: str = "center",
    batched_transforms: bool | None = None,
    deterministic_backward: bool | None = None,
    progress=None,
    log_every: int = 1,
    preprocessing: Preprocessing = TORCHVISION,
    readout=None,
) -> FVResult:
    """Optimise one image per channel of ``layer`` and return the images, curves and status.

    The settings are an :class:`~resstream.fv.settings.FVSettings`' (the config's ``fv``, with the
    layer's ``jitter``), all given: their defaults live in the config schema, and this module does
    not read it (an edit of the schema must not rerun the FV jobs).  ``progress(step, steps,
    seconds, values)`` is called every ``log_every`` steps and after the last.

    ``microbatch``: most units per forward.  CPU convolution kernels pick different algorithms
    for different batch sizes on small (receptive-field cropped) inputs, which changes the last
    bits, and Adam turns last-bit differences into visible ones.  So the default (None) runs
    cropped units one per forward on CPU, and full-size (224 px) units, whose kernels give the
    same bits at any batch size (tested), as one batch per input size: a unit's FV is then
    bit-identical in any chunk.  A number batches cropped units too: faster on CPU, and a unit's
    FV then depends on the chunk it runs in (in its last bits, which Adam amplifies).  On a GPU
    the default is the whole chunk, or the largest equal microbatches its free memory holds.
    ``preprocessing``: the model's own; its mean and std normalise the image the network sees.
    ``readout``: what a unit's map is (:class:`ChannelMaps` of ``ref`` by default; ``channels``
    then index the readout's units, and ``ref`` still sizes the receptive-field crop and memory).
    ``channels_last`` runs convolutions in NHWC (×1.1-1.4 on CPU).  ``tf32``: TF32 tensor-core
    math on CUDA (changes results).  ``batched_transforms``: the whole chunk's transforms at once
    (None: on CUDA only; same bits on CPU, slower there).  ``deterministic_backward``: their
    backward in a fixed order (None: on CUDA only; on CPU it changes the last bits)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"FV objective '{objective}' unknown; one of {', '.join(OBJECTIVES)}")
    device = next(model.parameters()).device
    batched, deterministic = _transform_path(device, batched_transforms, deterministic_backward)
    seeds = [unit_seed(seed, layer, c, objective) for c in channels]
    t0 = time.time()
    with lucent_on(device), gpu_math(device, tf32):
        spectrum, image_f = _unit_images(seeds, device)
        make_inputs = _input_maker(jitter, UnitRandom(seeds), batched, deterministic)
        forward = _UnitForward(
            model, blocks, ref, hook, channels, objective, rf_crop, bf16, microbatch, channels_last, jitter, readout
        )
        loop = _Optimisation(spectrum, image_f, make_inputs, forward, lr, layer, preprocessing)
        curve, nan_seen = loop.run(steps, log_every, progress, t0)
        with torch.no_grad():
            final_images = image_f().float().cpu().numpy()
    return FVResult(
        layer=layer,
        channels=list(channels),
        objective=objective,
        seeds=seeds,
        images=final_images.astype(np.float32),
        final_activation=curve[:, -1].copy(),
        curve=curve,
        status=unit_status(curve, nan_seen, final_images),
        settings=dict(
            steps=steps,
            lr=lr,
            jitter=jitter,
            hook=hook,
            seed=seed,
            rf_crop=rf_crop,
            bf16=bf16,
            objective=objective,
            microbatch=microbatch,
            channels_last=channels_last,
            tf32=tf32,
            batched_transforms=batched,
            deterministic_backward=deterministic,
            device=str(device),
            **forward.memory_settings(),
        ),
        seconds=time.time() - t0,
        preprocessing=preprocessing.as_dict(),
    )


def _transform_path(device: torch.device, batched_transforms: bool | None, deterministic_backward: bool | None):
    """``(batched, deterministic)``: the transforms of the whole chunk at once, their backward in a
    fixed order (None: on CUDA only)."""
    batched = device.type == "cuda" if batched_transforms is None else batched_transforms
    deterministic = device.type == "cuda" if deterministic_backward is None else deterministic_backward
    if deterministic and not batched:
        raise ValueError("deterministic_backward needs batched_transforms")
    return batched, deterministic


def _input_maker(jitter: int, rng: UnitRandom, batched: bool, deterministic: bool):
    """``make_inputs(images, mean, std)``: each unit's transformed, normalised network input."""
    if batched:
        return BatchedTransforms(jitter, rng, deterministic)
    transforms = lucent_transform.compose(lucent_transforms(jitter))
    return lambda images, mean, std: per_unit_inputs(images, transforms, rng, mean, std)


class _Optimisation:
    """The step loop: Adam on the units' spectra, each unit's objective value at every step and
    whether it ever saw a NaN, kept on the device (read back only for ``progress``)."""

    def __init__(
        self, spectrum, image_f, make_inputs, forward: _UnitForward, lr: float, layer: str, preprocessing: Preprocessing
    ):
        self.spectrum, self.image_f, self.make_inputs, self.forward = spectrum, image_f, make_inputs, forward
        self.optimizer = torch.optim.Adam([spectrum], lr=lr)
        self.lr, self.layer = lr, layer
        device = spectrum.device
        self.mean = torch.tensor(preprocessing.mean, device=device)[:, None, None]
        self.std = torch.tensor(preprocessing.std, device=device)[:, None, None]

    def run(self, steps: int, log_every: int, progress, t0: float) -> tuple[np.ndarray, np.ndarray]:
        """``(curve [k, steps], nan_seen [k])`` as numpy, after ``steps`` steps."""
        k, device = self.forward.k, self.spectrum.device
        curve = torch.full((k, steps), float("nan"), device=device)
        nan_seen = torch.zeros(k, dtype=torch.bool, device=device)
        for step in range(steps):
            values, bad = self._step(step)
            curve[:, step] = values
            nan_seen |= ~torch.isfinite(values) | bad
            if progress is not None and ((step + 1) % log_every == 0 or step + 1 == steps):
                progress(step + 1, steps, time.time() - t0, values.cpu().numpy())  # the loop's only read-back
        return curve.cpu().numpy(), nan_seen.cpu().numpy()

    def _step(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One Adam step; ``(objective values [k], units whose gradient was not finite [k])``.  A
        unit's non-finite gradient is zeroed so that it cannot move (or poison) its spectrum."""
        spectrum = self.spectrum
        self.optimizer.zero_grad(set_to_none=True)
        values = self.forward(self.make_inputs(self.image_f(), self.mean, self.std), step)
        with torch.no_grad():
            bad = ~torch.isfinite(spectrum.grad.flatten(1)).all(dim=1)
            spectrum.grad.masked_fill_(bad.view(-1, *[1] * (spectrum.dim() - 1)), 0)
        try:
            self.optimizer.step()
        except RuntimeError as exc:  # e.g. an lr so large that Adam's step overflows float32
            raise FVError(
                f"FV of {self.layer} failed at step {step + 1} with lr {self.lr}: {exc}. Fix: lower fv.lr"
            ) from None
        return values, bad


def unit_status(curve: np.ndarray, nan_seen: np.ndarray, final_images: np.ndarray) -> list[str]:
    """Per unit: 'nan' (a NaN anywhere, in a step or the final image), 'dead' (the objective never
    rose above 0) or 'ok'."""
    nan_seen = nan_seen | ~np.isfinite(final_images).reshape(len(nan_seen), -1).all(axis=1)
    return ["nan" if nan_seen[i] else "ok" if np.nanmax(curve[i]) > 0 else "dead" for i in range(len(nan_seen))]
