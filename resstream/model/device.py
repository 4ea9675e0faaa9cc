"""Where a job runs: config ``model.device`` (auto | cpu | cuda) and the GPUs the job declared.

A Snakemake job declares ``resources: gpu=0|1`` (rules/common.smk) and its script decides the
device before torch is imported (:func:`resstream.base.gpu_slots.prepare_job_device`): a job that
declares no GPU sees none, one that declares one takes a free device of its own.  Here that
decision becomes a ``torch.device``; outside Snakemake (notebooks, the command line) ``gpus`` is
None and the setting alone decides.

``auto`` falls back to the CPU when CUDA cannot be used, and the job's log says why, once: no
CUDA device visible, a CPU-only torch build, or what torch said (a driver too old warns and
reports no device; a broken installation can raise).
"""

from __future__ import annotations

import logging
import os
import warnings

import torch

from resstream.base.errors import UserError

log = logging.getLogger("resstream.model.device")

DEVICE_SETTINGS = ("auto", "cpu", "cuda")
_said: set[str] = set()  # messages already logged by this process


class DeviceError(UserError, RuntimeError):
    """A device setting this machine or job cannot honour; the message names the fix."""


def cuda_unusable_reason() -> str | None:
    """None when CUDA can be used; otherwise why not, in words for a log line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            usable = torch.cuda.is_available()
        except Exception as exc:  # a broken driver or installation: any error means "not usable"
            return f"torch.cuda.is_available() raised {type(exc).__name__}: {_first_line(exc)}"
    if usable:
        return None
    if caught:  # e.g. "CUDA initialization: The NVIDIA driver on your system is too old"
        return f"torch could not start CUDA: {_first_line(caught[0].message)}"
    if not torch.backends.cuda.is_built():
        return "this torch build has no CUDA support (a CPU-only wheel)"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return f"no CUDA device is visible (CUDA_VISIBLE_DEVICES={visible!r})"
    return "no CUDA device is visible"


def _first_line(text) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else type(text).__name__


def _say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.warning("%s", message)


def resolve_device(setting: str = "auto", gpus: int | None = None) -> torch.device:
    """The ``torch.device`` of a job.  ``gpus``: how many GPUs the Snakemake job declared (None
    outside Snakemake).  A job that declared none runs on the CPU whatever the setting allows."""
    if setting not in DEVICE_SETTINGS:
        raise DeviceError(f"model.device '{setting}' unknown. Fix: use one of {', '.join(DEVICE_SETTINGS)}.")
    if setting == "cpu":
        return torch.device("cpu")
    if gpus == 0:
        if setting == "cuda":
            raise DeviceError(
                "model.device is 'cuda' but this job declares no GPU (resources gpu=0). "
                "Fix: do not set the job's gpu resource to 0, or set model.device: auto or cpu."
            )
        _say_once(
            "model.device auto: running on the CPU because this job declares no GPU (resources gpu=0: "
            "Snakemake found no usable CUDA device when it planned the jobs, or a profile set gpu=0)"
        )
        return torch.device("cpu")
    reason = cuda_unusable_reason()
    if reason is None:
        return torch.device("cuda")
    if setting == "cuda":
        raise DeviceError(
            f"model.device is 'cuda' but CUDA cannot be used: {reason}. Fix: set model.device: auto or cpu."
        )
    _say_once(f"model.device auto: running on the CPU because {reason}")
    return torch.device("cpu")
