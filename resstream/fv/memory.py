"""How many FV units go through the network in one forward: the device choice and memory sizing.

CPU: the chunk's units per input size in one forward, except receptive-field-cropped units, which
go one by one (CPU kernels change their last bits with the batch size on small inputs; see
:func:`resstream.fv.render.render_units`); ``fv.microbatch`` sets the number instead.

GPU: as many units per forward as the device's free memory holds (``torch.cuda.mem_get_info``),
at most the chunk (or ``fv.microbatch``).  A unit's need is what autograd keeps for its backward,
counted once per (layer, input size) on the ``meta`` device (no memory, no arithmetic), times a
margin for gradient buffers and the allocator.  A chunk that does not fit is split into
microbatches of equal size; if the estimate is still too high, the engine halves the microbatch
when CUDA runs out of memory (:mod:`resstream.fv.render`).

:func:`units_per_forward`, :func:`units_that_fit` and :func:`split_sizes` are pure arithmetic,
tested with made-up free-memory numbers (tests/fv/test_fv_gpu_path.py).
"""

from __future__ import annotations

import copy
import math

import torch

from resstream.fv.transforms import BatchedTransforms, UnitRandom
from resstream.model.taps import block_taps

BACKWARD_MARGIN = 2.0  # saved tensors + gradient buffers of the same order during the backward
USABLE_FRACTION = 0.8  # of the free memory: the allocator's fragmentation, cuDNN workspaces


def units_per_forward(units: int, cropped: bool, microbatch: int | None, fit: int | None) -> int:
    """Most units of one input-size group in one forward.  ``fit``: how many the device's free memory
    holds, None where the device reports no free memory (the CPU: its rules then apply)."""
    if fit is None:
        return min(microbatch or (1 if cropped else units), units)
    return max(1, min(microbatch or units, units, fit))


def units_that_fit(per_unit_bytes: int, free: int, reserved: int = 0, usable: float = USABLE_FRACTION) -> int:
    """Units whose forward and backward fit in ``usable`` of ``free`` bytes after ``reserved`` (≥ 1:
    a single unit that does not fit is left to fail and be reported)."""
    budget = int(free * usable) - reserved
    return max(1, budget // max(1, per_unit_bytes))


def split_sizes(units: int, most: int) -> list[int]:
    """``units`` in the fewest microbatches of at most ``most``, as equal as possible (larger first)."""
    parts = math.ceil(units / max(1, most))
    base, extra = divmod(units, parts)
    return [base + 1] * extra + [base] * (parts - extra)


def free_bytes(device: torch.device) -> int | None:
    """Free memory of a CUDA device in bytes; None on other devices (no sizing there)."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.mem_get_info(device)[0])


def _kept_bytes(run, batch: int) -> int:
    """Bytes autograd keeps for the backward of ``run(batch)`` (meta tensors: nothing is computed)."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        extra = run(batch)
    return total + extra


def transform_bytes_per_unit(jitter: int) -> int:
    """Bytes one more unit's transforms keep for the backward (× the margin), plus its image, spectrum
    and Adam moments: memory held for the whole chunk during a step, outside the microbatches."""

    def run(batch: int) -> int:
        x = torch.zeros(batch, 3, 224, 224, device="meta", requires_grad=True)
        mean, std = torch.zeros(3, 1, 1, device="meta"), torch.ones(3, 1, 1, device="meta")
        BatchedTransforms(jitter, UnitRandom(list(range(batch))))(x, mean, std)
        return 4 * x.numel() * x.element_size()

    return int(BACKWARD_MARGIN * (_kept_bytes(run, 2) - _kept_bytes(run, 1)))


def saved_bytes_per_unit(model, blocks, ref, hook: str, size: int) -> int:
    """Bytes one more unit's truncated forward at ``size`` px keeps for its backward (× the margin),
    counted on the ``meta`` device in float32 (an upper bound under bf16 autocast): what a batch of
    two keeps minus what a batch of one keeps (so the weights, saved by every convolution, do not
    count)."""
    meta = copy.deepcopy(model).to("meta")

    def run(batch: int) -> int:
        x = torch.zeros(batch, 3, size, size, device="meta", requires_grad=True)
        block_taps(meta, x, [ref], hook, blocks)
        return x.numel() * x.element_size()

    return int(BACKWARD_MARGIN * (_kept_bytes(run, 2) - _kept_bytes(run, 1)))
