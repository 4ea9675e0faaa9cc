"""Pin each concurrent GPU job of a workstation to its own device.

Snakemake's ``resources: gpu=1`` with ``--resources gpu=N`` only caps how many GPU jobs run at
once; nothing tells a job WHICH device to use.  Each job takes the first free
slot among lock files ``gpu{i}.lock`` (an ``flock`` held for the life of the process, released by
the kernel even when the job is killed) and sets ``CUDA_VISIBLE_DEVICES`` before torch is imported.
This module must not import torch.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time

_held = []  # open lock files: the lock lives as long as the process
SLOTS_FOLDER = ".gpu_slots"  # under the results folder


def visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


def pin_gpu(lock_dir: str, poll_seconds: float = 2.0) -> str | None:
    """Claim a free GPU and make it the only visible one; None when there is no GPU.

    When every device is taken (more GPU jobs started than devices, e.g. no ``--resources gpu=N``)
    the job waits for one to free instead of sharing it."""
    gpus = visible_gpus()
    if len(gpus) <= 1:
        return gpus[0] if gpus else None
    os.makedirs(lock_dir, exist_ok=True)
    waited = False
    while True:
        for gpu in gpus:
            f = open(os.path.join(lock_dir, f"gpu{gpu}.lock"), "w")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            _held.append(f)
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            return gpu
        if not waited:
            print(
                f"resstream: all {len(gpus)} GPUs are busy with other jobs; waiting for one "
                f"(run snakemake with --resources gpu={len(gpus)} to avoid waiting jobs)",
                file=sys.stderr,
            )
            waited = True
        time.sleep(poll_seconds)


def declared_gpus(snakemake) -> int:
    """The GPUs a Snakemake job declared (``resources: gpu=``; 0 when the rule names none)."""
    return int(getattr(snakemake.resources, "gpu", 0) or 0)


def prepare_job_device(device: str, gpus: int, slots_dir: str) -> int:
    """Make a job run on the device it declares; call it before torch is imported.

    ``device``: the rule's ``model.device`` param; ``gpus``: the GPUs the job declared
    (:func:`declared_gpus`); ``slots_dir``: the folder of the lock files (one per run's results).
    A job that declares a GPU (and ``device`` is not cpu) takes a free device of its own
    (:func:`pin_gpu`).  A job that declares none sees none (``CUDA_VISIBLE_DEVICES=""``), so
    nothing in it, torch-lucent's module-level ``cuda:0`` included, can touch a GPU.  Returns the
    number of GPUs it may use, for :func:`resstream.model.device.resolve_device`."""
    gpus = 0 if device == "cpu" else int(gpus)
    if gpus:
        pin_gpu(slots_dir)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    return gpus
