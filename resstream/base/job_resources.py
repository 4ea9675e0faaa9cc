"""Cluster resources of every job from its size: ``runtime`` (minutes) and ``mem_mb``.

The rules call these as callables of the job's wildcards and ``attempt`` (rules/*.smk), so a
cluster profile needs to know nothing about sizes, and a retry (``retries:`` in the profile) asks
for ``attempt`` times as much time and memory as the first submission.  Local runs ignore them.

Each budget is a rate times the job's size plus the start of a Python process with torch and the
network.  The rates are budgets, not predictions: what they rest on is written beside each;
measure your own machines with the jobs' ``benchmark:`` files (``results/benchmarks/``) and
override a rule with ``--set-resources rule:runtime=N`` where your nodes are slower.
"""

from __future__ import annotations

import math

# Python, torch and the weights, the model on its device, scheduling slack (one job's start measured
# at 3-8 s on a 2-core machine: bench/ and the benchmark files).
START_MINUTES = 5
# FV: seconds per unit and optimisation step.  CPU: the deepest layers, uncropped, one thread,
# measured at <= 0.084 s (layer1 cropped 0.017 s) and 0.10 s with the job's
# start on a busy 2-core machine (bench/bench_budgets.py).  GPU: not measured here; 0.03 s is the
# rate of an unbatched torch-lucent render on a GPU (~37 steps/s for a ResNet50, torch-lucent's
# published speed; docs/performance.md#cluster-budgets) and a chunk's units run batched, so a unit-step costs no more than that.
FV_SECONDS_PER_UNIT_STEP = {"cpu": 0.15, "gpu": 0.03}
# the dataset pass: measured 20-29 images/s on 2 CPU cores (decoding bound; a GPU does not speed the
# decoding up), budgeted at 10 images/s
PASS_IMAGES_PER_SECOND = 10
# per unit of a block or layer, one CPU thread; measured (bench/bench_budgets.py, 64 units of
# layer4.1 / block 4.1, 200 images): 0.05 s, 0.17 s, 0.27 s; atlas 94 ms (bench/bench_atlas.py).
# A dataset of 50,000 images gives each unit up to 18 distinct top images, hence the margin.
PER_UNIT_SECONDS = {
    "exemplar_grids": 1.0,  # 9 JPEG decodes and one 680 px PNG per unit
    "measure_fv": 2.0,  # 4 truncated forwards of the unit's FVs
    "measure_imagenet": 4.0,  # up to 18 JPEG decodes and 3 forwards of each
    "atlas_block": 1.0,
}
# memory: torch with the network (measured peak RSS of every job kind on CPU: 0.76-1.3 GB) and a
# CUDA context's host side
BASE_MB = 3000
PASS_MB_PER_BATCH_IMAGE = 12  # measured (docs/stages.md "Dataset activations": 0.75 GB + 12 MB per image)
WORKER_MB = 500  # a DataLoader worker process (torch imported, decoding)


def _minutes(seconds: float, attempt: int) -> int:
    return int(math.ceil(START_MINUTES + seconds / 60)) * max(1, int(attempt))


def _mb(mb: float, attempt: int) -> int:
    return int(math.ceil(mb)) * max(1, int(attempt))


def fv_runtime(units: int, steps: int, gpus: int, attempt: int = 1) -> int:
    """Minutes for an FV or channel-FV chunk: units x steps at the CPU or GPU rate."""
    rate = FV_SECONDS_PER_UNIT_STEP["gpu" if gpus else "cpu"]
    return _minutes(units * steps * rate, attempt)


def fv_mem_mb(units: int, attempt: int = 1) -> int:
    """MB for an FV chunk: the network, the chunk's float images, curves and Adam state (~5 MB per unit)."""
    return _mb(BASE_MB + 5 * units, attempt)


def pass_runtime(images: int, attempt: int = 1) -> int:
    """Minutes for the dataset pass over ``images`` images."""
    return _minutes(images / PASS_IMAGES_PER_SECOND, attempt)


def pass_mem_mb(batch_size: int, workers: int, spatial_bytes_per_image: int, attempt: int = 1) -> int:
    """MB for the dataset pass: the network, a batch's taps, the workers, and a block of full maps
    of the spatial layers (one batch of them is buffered before it is written)."""
    batch = batch_size * (PASS_MB_PER_BATCH_IMAGE + 2 * spatial_bytes_per_image / 1e6)
    return _mb(BASE_MB + batch + WORKER_MB * workers, attempt)


def per_unit_runtime(rule: str, units: int, attempt: int = 1) -> int:
    """Minutes for a job whose work grows with its units (``PER_UNIT_SECONDS``)."""
    return _minutes(units * PER_UNIT_SECONDS[rule], attempt)


def measure_mem_mb(channels: int, images: int, attempt: int = 1) -> int:
    """MB for a measurement: the network, and I and B of its channels over every dataset image
    (float64, for Spearman's rho)."""
    return _mb(BASE_MB + 2 * images * channels * 8 / 1e6, attempt)


def small_job_mem_mb(attempt: int = 1) -> int:
    return _mb(BASE_MB, attempt)


def small_job_runtime(attempt: int = 1) -> int:
    return _minutes(0, attempt)
