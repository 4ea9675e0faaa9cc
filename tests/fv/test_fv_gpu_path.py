"""The FV engine's GPU path, checked on the CPU: memory sizing and chunk splitting, the out-of-memory
fallback, no read-back from the device inside the step loop, batched transforms, the device choice."""

import math
import os

import numpy as np
import pytest
import torch

from resstream.fv import memory as fv_memory
from resstream.fv import render as fv
from resstream.model.blocks import TapRef
from resstream.workflow.plan import schema_fv_settings

DEEP = ("layer4.0.downsample.1", TapRef("4.0", "D"), 16)  # full 224 px inputs: same bits at any batch size on CPU
MIB = 2**20


@pytest.mark.parametrize("units,most", [(64, 64), (64, 40), (64, 32), (65, 32), (5, 2), (1, 8), (7, 1), (100, 33)])
def test_a_chunk_is_split_into_the_fewest_equal_microbatches(units, most):
    sizes = fv_memory.split_sizes(units, most)
    assert sum(sizes) == units and max(sizes) <= most
    assert len(sizes) == -(-units // most)  # no fewer microbatches can hold them
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_units_that_fit_from_made_up_free_memory():
    # 8 GiB free, 80 % usable, 1 GiB held by the chunk's transforms, 64 MiB per unit:
    # (0.8 * 8192 - 1024) / 64 = 86.4 -> 86 units.
    assert fv_memory.units_that_fit(64 * MIB, 8192 * MIB, reserved=1024 * MIB) == 86
    assert fv_memory.units_that_fit(64 * MIB, 80 * 1024 * MIB) == 1024  # an H100's 80 GiB: far more than a chunk
    assert fv_memory.units_that_fit(64 * MIB, 10 * MIB) == 1  # not even one: tried, and reported if it fails


def test_device_choice_of_units_per_forward():
    # CPU (no free-memory figure): cropped units one by one, full-size ones together, or fv.microbatch.
    assert fv_memory.units_per_forward(64, cropped=True, microbatch=None, fit=None) == 1
    assert fv_memory.units_per_forward(64, cropped=False, microbatch=None, fit=None) == 64
    assert fv_memory.units_per_forward(64, cropped=True, microbatch=16, fit=None) == 16
    # GPU: the whole group, capped by memory and by fv.microbatch, cropped or not.
    assert fv_memory.units_per_forward(64, cropped=True, microbatch=None, fit=1000) == 64
    assert fv_memory.units_per_forward(64, cropped=False, microbatch=None, fit=40) == 40
    assert fv_memory.units_per_forward(64, cropped=True, microbatch=16, fit=40) == 16
    assert fv_memory.units_per_forward(12, cropped=False, microbatch=None, fit=0) == 1


def test_per_unit_memory_estimate_grows_with_the_input_area(net):
    """What autograd keeps grows with the area: a 112 px forward keeps a quarter of a 224 px one
    (± the odd border row), and the weights do not count."""
    model, blocks = net
    full = fv_memory.saved_bytes_per_unit(model, blocks, TapRef("2.1", "B"), "intended", 224)
    half = fv_memory.saved_bytes_per_unit(model, blocks, TapRef("2.1", "B"), "intended", 112)
    assert full == pytest.approx(4 * half, rel=0.05)
    # layer2.1's float32 maps at 224 px: 64x112x112 stem + 64x56x56 and 128x28x28 maps; over 1 MiB each
    assert 16 * MIB < full < 200 * MIB
    assert 0 < fv_memory.transform_bytes_per_unit(0) < fv_memory.transform_bytes_per_unit(16)


def test_a_chunk_that_does_not_fit_runs_in_microbatches_with_the_same_bits(net, monkeypatch):
    """Free memory made up so that two units fit: the chunk of five runs as 2+2+1 (recorded), and
    each unit's FV equals the whole-chunk run's bit for bit (full-size inputs on CPU)."""
    model, blocks = net
    layer, ref, jitter = DEEP
    whole = fv.render_units(model, blocks, layer, ref, [1, 2, 3, 4, 5], **schema_fv_settings(steps=2, jitter=jitter))
    need = fv_memory.saved_bytes_per_unit(model, blocks, ref, "intended", 224)
    reserved = 5 * fv_memory.transform_bytes_per_unit(jitter)
    free = math.ceil((reserved + 2.5 * need) / fv_memory.USABLE_FRACTION)
    monkeypatch.setattr(fv_memory, "free_bytes", lambda device: free)
    sizes = []
    real = fv.block_taps
    monkeypatch.setattr(fv, "block_taps", lambda m, x, *a: sizes.append(x.shape[0]) or real(m, x, *a))
    split = fv.render_units(model, blocks, layer, ref, [1, 2, 3, 4, 5], **schema_fv_settings(steps=2, jitter=jitter))
    assert sizes == [2, 2, 1] * 2
    assert split.settings["units_that_fit"] == {"224": 2} and split.settings["free_bytes"] == free
    assert np.array_equal(split.images, whole.images) and np.array_equal(split.curve, whole.curve)


def test_out_of_memory_halves_the_microbatch_and_keeps_the_bits(net, monkeypatch):
    model, blocks = net
    layer, ref, jitter = DEEP
    whole = fv.render_units(model, blocks, layer, ref, [1, 2, 3, 4], **schema_fv_settings(steps=2, jitter=jitter))
    real = fv.block_taps

    def small_device(m, x, *a):
        if x.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(m, x, *a)

    monkeypatch.setattr(fv, "block_taps", small_device)
    halved = fv.render_units(model, blocks, layer, ref, [1, 2, 3, 4], **schema_fv_settings(steps=2, jitter=jitter))
    assert halved.settings["oom_splits"] == [[0, 2]]  # 4 -> 2 + 2 at the first step, then kept
    assert np.array_equal(halved.images, whole.images) and np.array_equal(halved.curve, whole.curve)

    def no_memory(m, x, *a):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(fv, "block_taps", no_memory)
    with pytest.raises(fv.FVError, match="out of memory for a single unit.*Fix: free the device's memory"):
        fv.render_units(model, blocks, layer, ref, [1, 2, 3], **schema_fv_settings(steps=1, jitter=jitter))


READ_BACKS = ("item", "cpu", "numpy", "tolist", "__bool__", "__float__", "__int__", "__index__")


def count_read_backs(monkeypatch, run) -> int:
    """Calls that bring a tensor's value to the host.  Adam's ``.item()`` of its step count is left
    out: Adam keeps that count on the host on every device (torch.optim: not capturable, not fused)."""
    import sys

    calls = []
    for name in READ_BACKS:
        real = getattr(torch.Tensor, name)

        def counted(self, *a, _real=real, _name=name, **kw):
            if not sys._getframe(1).f_globals.get("__name__", "").startswith("torch.optim"):
                calls.append(_name)
            return _real(self, *a, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    run()
    monkeypatch.undo()
    return len(calls)


@pytest.mark.parametrize("batched", [False, True], ids=["per-unit", "batched"])
def test_no_read_back_from_the_device_inside_the_step_loop(net, monkeypatch, batched):
    """Read-backs grow only with the progress reports (one every log_every steps): N steps cost
    at most ceil(N / log_every) reports of two calls plus a constant (the final fetch)."""
    model, blocks = net
    layer, ref = "layer3.0.bn2", TapRef("3.0", "B")  # jitter 4: 224 px inputs, cropped (one crop plan)
    reports = []

    def run(steps):
        return lambda: fv.render_units(
            model,
            blocks,
            layer,
            ref,
            [0, 1, 2],
            **schema_fv_settings(
                steps=steps, jitter=4, log_every=5, batched_transforms=batched, progress=lambda *a: reports.append(a)
            ),
        )

    short = count_read_backs(monkeypatch, run(6))
    long = count_read_backs(monkeypatch, run(18))
    assert long - short == 2 * (math.ceil(18 / 5) - math.ceil(6 / 5))  # only the extra reports' .cpu().numpy()
    # the constant: the final fetch and the crop plan's one-time numeric check (model/receptive_field.py)
    assert long <= 2 * math.ceil(18 / 5) + 12
    assert [r[0] for r in reports] == [5, 6, 5, 10, 15, 18]


@pytest.mark.parametrize(
    "layer,ref,jitter",
    [
        ("layer1.1.bn2", TapRef("1.1", "B"), 0),  # sizes 224-236, several size groups per step, cropped
        ("layer2.1.bn2", TapRef("2.1", "B"), 4),
        DEEP,
    ],
)
def test_batched_transforms_give_the_per_unit_bits_on_cpu(net, layer, ref, jitter):
    """The GPU default (the chunk's transforms at once, units grouped by their drawn scale) draws and
    computes what lucent's per-unit calls do: on CPU the FVs are bit-identical."""
    model, blocks = net
    channels = [0, 3, 7, 9, 11, 12]
    per_unit = fv.render_units(
        model, blocks, layer, ref, channels, **schema_fv_settings(steps=3, jitter=jitter, batched_transforms=False)
    )
    batched = fv.render_units(
        model, blocks, layer, ref, channels, **schema_fv_settings(steps=3, jitter=jitter, batched_transforms=True)
    )
    assert batched.settings["batched_transforms"] and not per_unit.settings["batched_transforms"]
    assert np.array_equal(batched.images, per_unit.images) and np.array_equal(batched.curve, per_unit.curve)
    assert not np.array_equal(batched.images[0], batched.images[1])


def test_gpu_math_sets_tf32_and_determinism_only_on_cuda(monkeypatch):
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul

    def flags():
        return (
            cudnn.allow_tf32,
            matmul.allow_tf32,
            cudnn.deterministic,
            cudnn.benchmark,
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        )

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = flags()
    with fv.gpu_math(torch.device("cpu"), tf32=True):
        assert flags() == before
    for tf32 in (False, True):
        with fv.gpu_math(torch.device("cuda"), tf32=tf32):  # flags only: no GPU is touched
            assert flags() == (tf32, tf32, True, False, True, True)
        assert flags() == before
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_cpu_defaults_choose_the_cpu_path(net):
    model, blocks = net
    layer, ref, jitter = DEEP
    res = fv.render_units(model, blocks, layer, ref, [0], **schema_fv_settings(steps=1, jitter=jitter))
    assert res.settings["device"] == "cpu" and res.settings["batched_transforms"] is False
    assert "free_bytes" not in res.settings and res.settings["tf32"] is False


def grads(fn, x, g):
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad((fn(x) * g).sum(), x)[0]


@pytest.mark.parametrize("size", [224, 236, 256, 264])
def test_fixed_order_backward_passes_equal_torchs(size):
    """The GPU default's backward passes of reflect padding, bilinear resizing and the affine warps
    (every shift and angle lucent draws) against torch's own autograd, on CPU: same forward bits,
    gradients equal to float rounding of the sample coordinates (|g| up to ~5 here)."""
    from resstream.fv import transforms as T

    gen = torch.Generator().manual_seed(size)
    x = torch.rand(11, 3, size, size, generator=gen)
    for pad in (4, 16):
        g = torch.randn(11, 3, size + 2 * pad, size + 2 * pad, generator=gen)
        assert torch.equal(T.reflect_pad(x, pad, True), T.reflect_pad(x, pad))
        torch.testing.assert_close(
            grads(lambda t: T.reflect_pad(t, pad, True), x, g),
            grads(lambda t: T.reflect_pad(t, pad), x, g),
            rtol=0,
            atol=1e-5,
        )
    for scale in T.SCALES[1:]:
        g = torch.randn_like(T.rescale(x, np.float64(scale)))
        assert torch.equal(T.rescale(x, np.float64(scale), True), T.rescale(x, np.float64(scale)))
        torch.testing.assert_close(
            grads(lambda t: T.rescale(t, np.float64(scale), True), x, g),
            grads(lambda t: T.rescale(t, np.float64(scale)), x, g),
            rtol=0,
            atol=1e-5,
        )
    g = torch.randn(11, 3, size, size, generator=gen)
    angles = list(T.ANGLES)  # -5..5 degrees, one per image
    shifts = [(dx, dy) for dx, dy in zip([0, 1, 15, 7, 3, 0, 8, 2, 11, 5, 14], [0, 3, 2, 7, 0, 15, 9, 1, 13, 6, 4])]
    for warp, draws in ((T.rotate, angles), (T.translate, shifts)):
        assert torch.equal(warp(x, draws, True), warp(x, draws))
        torch.testing.assert_close(
            grads(lambda t: warp(t, draws, True), x, g), grads(lambda t: warp(t, draws), x, g), rtol=0, atol=1e-4
        )


def test_deterministic_backward_keeps_each_unit_its_own(net):
    """With the fixed-order backward (the GPU default), a unit's FV is still the same alone and in a
    chunk (deep layer: full 224 px inputs, on CPU), and different units differ."""
    model, blocks = net
    layer, ref, jitter = DEEP
    kw = schema_fv_settings(steps=2, jitter=jitter, batched_transforms=True, deterministic_backward=True)
    alone = fv.render_units(model, blocks, layer, ref, [300], **kw)
    chunk = fv.render_units(model, blocks, layer, ref, [1, 300, 7], **kw)
    assert np.array_equal(alone.images[0], chunk.images[1]) and np.array_equal(alone.curve[0], chunk.curve[1])
    assert not np.array_equal(chunk.images[0], chunk.images[1])
    assert chunk.settings["deterministic_backward"] is True
