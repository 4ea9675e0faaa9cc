"""Pin each concurrent GPU job of a workstation to its own device.

Snakemake's ``resources: gpu=1`` with ``--resources gpu=N`` only caps how many GPU jobs run at
once; nothing tells a job WHICH device to use (spec SNAKEMAKE.md).  Each job takes the first free
slot among lock files ``gpu{i}.lock`` (an ``flock`` held for the life of the process, released by
the kernel even when the job is killed) and sets ``CUDA_VISIBLE_DEVICES`` before torch is imported.
This module must not import torch.
"""

from __future__ import annotations

import fcntl
import os
import subprocess

_held = []  # open lock files: the lock lives as long as the process


def visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


def pin_gpu(lock_dir: str) -> str | None:
    """Claim a free GPU and make it the only visible one; None when there is no GPU."""
    gpus = visible_gpus()
    if len(gpus) <= 1:
        return gpus[0] if gpus else None
    os.makedirs(lock_dir, exist_ok=True)
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
    raise RuntimeError(
        f"all {len(gpus)} GPU slots in {lock_dir} are taken: run snakemake with --resources gpu={len(gpus)} "
        f"(the default profile does) so no more GPU jobs start than there are GPUs"
    )
