"""Every job runs on the device it declares: the device choice with CUDA availability patched (this
machine has no GPU), the FV loop on a CPU model while CUDA looks visible (torch-lucent's cuda:0),
the job-side pinning or hiding of GPUs, and the workflow's declarations."""

import logging
import os
import re
import types
import warnings

import numpy as np
import pytest
import torch

from helpers.workflow import smk
from resstream.base.errors import UserError
from resstream.base.gpu_slots import declared_gpus, prepare_job_device
from resstream.fv import render as fv
from resstream.model import device as dev
from resstream.model.blocks import TapRef
from resstream.workflow.plan import schema_fv_settings


@pytest.fixture
def fresh_log(caplog):
    dev._said.clear()  # "once" is per process: start each test with nothing said
    caplog.set_level(logging.INFO, logger="resstream.model.device")
    yield caplog
    dev._said.clear()


def cuda(monkeypatch, available=True, warn=None, error=None, built=True):
    """Make torch report CUDA as this test needs (the machine has none)."""

    def is_available():
        if error:
            raise error
        if warn:
            warnings.warn(warn, UserWarning)
        return available

    monkeypatch.setattr(torch.cuda, "is_available", is_available)
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: built)


def said(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "resstream.model.device"]


def test_cpu_is_cpu_even_when_cuda_is_visible(monkeypatch, fresh_log):
    cuda(monkeypatch, available=True)
    assert dev.resolve_device("cpu") == torch.device("cpu")
    assert dev.resolve_device("cpu", gpus=1) == torch.device("cpu")
    assert said(fresh_log) == []


def test_auto_and_cuda_take_the_gpu_when_usable(monkeypatch, fresh_log):
    cuda(monkeypatch, available=True)
    assert dev.resolve_device("auto").type == "cuda"
    assert dev.resolve_device("auto", gpus=1).type == "cuda"
    assert dev.resolve_device("cuda", gpus=1).type == "cuda"
    assert said(fresh_log) == []


def test_a_job_that_declares_no_gpu_runs_on_the_cpu(monkeypatch, fresh_log):
    cuda(monkeypatch, available=True)
    assert dev.resolve_device("auto", gpus=0) == torch.device("cpu")
    assert "declares no GPU" in said(fresh_log)[0]
    with pytest.raises(dev.DeviceError, match="declares no GPU.*Fix:"):
        dev.resolve_device("cuda", gpus=0)


@pytest.mark.parametrize(
    "case,words",
    [
        (dict(available=False, built=False), "CPU-only"),
        (dict(available=False), "no CUDA device is visible"),
        (
            dict(
                available=False,
                warn="CUDA initialization: The NVIDIA driver on your system is too old (found version 10020).",
            ),
            "driver on your system is too old",
        ),
        (
            dict(error=RuntimeError("cudaGetDeviceCount failed\nmore detail")),
            "raised RuntimeError: cudaGetDeviceCount failed",
        ),
    ],
)
def test_auto_falls_back_to_cpu_and_says_why_once(monkeypatch, fresh_log, case, words):
    cuda(monkeypatch, **case)
    assert dev.resolve_device("auto") == torch.device("cpu")
    assert dev.resolve_device("auto") == torch.device("cpu")  # a second call says nothing more
    lines = said(fresh_log)
    assert (
        len(lines) == 1 and lines[0].startswith("model.device auto: running on the CPU because") and words in lines[0]
    )
    assert "\n" not in lines[0]
    with pytest.raises(
        dev.DeviceError,
        match=f"model.device is 'cuda' but CUDA cannot be used: .*{re.escape(words)}.*Fix: set model.device: auto or cpu",
    ):
        dev.resolve_device("cuda")
    assert issubclass(dev.DeviceError, UserError)


class TorchSeeingCuda:
    """torch as a module sees it on a GPU host: CUDA available, everything else torch's own."""

    cuda = types.SimpleNamespace(is_available=lambda: True)

    def __getattr__(self, name):
        return getattr(torch, name)


@pytest.mark.parametrize(
    "layer,ref,jitter",
    [
        ("layer2.0.downsample.1", TapRef("2.0", "D"), 0),
        ("layer3.0.downsample.1", TapRef("3.0", "D"), 4),
        ("layer4.0.downsample.1", TapRef("4.0", "D"), 16),
    ],
)
def test_fv_of_a_cpu_model_stays_on_the_cpu_while_cuda_is_visible(monkeypatch, net, layer, ref, jitter):
    """As on a GPU host with model.device: cpu: torch-lucent sees CUDA (its colour decorrelation asks
    torch.cuda.is_available() at every call) and its module-level devices, fixed at import, say
    cuda:0.  Lucent's own decorrelation then fails; resstream's FV runs on the model's device, gives
    the same result as without CUDA, and leaves lucent's settings as they were.  (Only lucent's view
    of torch is patched: Adam itself would try to reach the missing GPU.)"""
    model, blocks = net
    plain = fv.render_units(model, blocks, layer, ref, [3], **schema_fv_settings(steps=2, jitter=jitter, rf_crop=False))
    monkeypatch.setattr(fv.lucent_color, "torch", TorchSeeingCuda())
    gpu0 = torch.device("cuda:0")
    monkeypatch.setattr(fv.lucent_spatial, "device", gpu0)
    monkeypatch.setattr(fv.lucent_transform, "device", gpu0)
    with pytest.raises((RuntimeError, AssertionError)):  # the failure this guards against
        fv.lucent_color.to_valid_rgb(lambda: torch.zeros(1, 3, 8, 8), decorrelate=True)()
    seen = fv.render_units(model, blocks, layer, ref, [3], **schema_fv_settings(steps=2, jitter=jitter, rf_crop=False))
    assert seen.settings["device"] == "cpu"
    assert np.array_equal(seen.images, plain.images) and np.array_equal(seen.curve, plain.curve)
    assert fv.lucent_spatial.device == gpu0 and fv.lucent_transform.device == gpu0


def job_gpus(gpu=None) -> int:
    """What a script hands prepare_job_device: the gpu its job declared (a rule may name none)."""
    resources = types.SimpleNamespace(**({} if gpu is None else {"gpu": gpu}))
    return declared_gpus(types.SimpleNamespace(resources=resources))


def test_a_job_declaring_no_gpu_sees_none(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert prepare_job_device("auto", job_gpus(0), "/nonexistent") == 0 and os.environ["CUDA_VISIBLE_DEVICES"] == ""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert prepare_job_device("auto", job_gpus(), "/nonexistent") == 0  # a rule without gpu
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert prepare_job_device("cpu", job_gpus(1), "/nonexistent") == 0 and os.environ["CUDA_VISIBLE_DEVICES"] == ""


def test_a_job_declaring_a_gpu_takes_one_of_its_own(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert prepare_job_device("auto", job_gpus(1), str(tmp_path / ".gpu_slots")) == 1
    assert os.environ["CUDA_VISIBLE_DEVICES"] in ("2", "5")
    assert os.listdir(tmp_path / ".gpu_slots")  # the lock of the device it holds


# Rules whose jobs load the model onto a device; every other job stays on the CPU.
MODEL_RULES = {"fv_chunk", "fv_channel_chunk", "activations", "measure_fv", "measure_imagenet"}


def test_every_job_that_runs_the_model_declares_the_gpu(tmp_path, sample_dir):
    """A dry run with model.device: cuda: the FV, channel-FV, dataset and measurement jobs declare
    gpu=1 (so --resources gpu=N caps them), the others none."""
    proc = smk(
        "-n",
        "--cores",
        "2",
        "--configfile",
        "demo.yaml",
        "--config",
        f"dataset={{path: {sample_dir}}}",
        f"results={tmp_path}",
        "model={device: cuda}",
    )
    declared: dict[str, set[str]] = {}
    for block in proc.stdout.split("\n\n"):
        rule = re.search(r"^\s*(?:local)?rule (\w+):", block, re.M)
        if rule:
            gpu = re.search(r"resources:.*\bgpu=(\d+)", block)
            declared.setdefault(rule.group(1), set()).add(gpu.group(1) if gpu else "0")
    assert MODEL_RULES <= set(declared), sorted(declared)
    for rule, values in declared.items():
        assert values == ({"1"} if rule in MODEL_RULES else {"0"}), (rule, values)
