"""Cluster budgets against measurements: each kind of job, run here on a CPU through its entry point
(random weights, one thread), timed and its peak memory read, next to the runtime and memory the
rules ask a cluster for (resstream/base/job_resources.py).

Prints per job kind: units, measured seconds (whole process: Python, torch, the work), seconds per
unit of work, the budget's seconds for the same size, budget / measured, peak RSS and the memory
budget.  A budget should stay above the measurement (ratio > 1) on the slowest node it is meant for.

    .venv/bin/python bench/bench_budgets.py --images 200 --units 64
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

BLOCK, LAYER = "4.1", "layer4.1.bn2"  # the deepest block: the largest per-unit cost


def job(kind: str, work: str, units: int, images: int) -> dict:
    """Run one job of ``kind`` in this process; returns what it did."""
    import h5py
    import numpy as np
    from PIL import Image

    from resstream.activations.jobs import activations_spec
    from resstream.activations.stream import activations_job
    from resstream.base.paths import activations_h5, exemplar_dir, fv_chunk_dir
    from resstream.model.weights import model_param
    from resstream.workflow.config import validate_config
    from resstream.workflow.plan import StudyPlan

    config = validate_config(
        {
            "results": work,
            "model": {"weights": "random:0", "device": "cpu"},
            "study": {"blocks": [BLOCK], "channels": units},
            "dataset": {"path": f"{work}/images"},
            "activations": {"workers": 0},
        }
    )
    study, model = StudyPlan(config), model_param(config["model"])
    h5 = activations_h5(work)
    if kind == "activations":
        activations_job(activations_spec(study).job(output={"h5": h5}, input={"images": None}))
        return {"units": images}
    if kind == "fv_chunk":
        from resstream.fv.job import fv_chunk_job
        from resstream.fv.jobs import fv_chunk_spec

        steps, n = 8, 4  # the first chunk of LAYER, its first n channels at `steps` steps
        job = fv_chunk_spec(study).job(
            output={"folder": f"{work}/fv-bench"}, layer=LAYER, chunk=study.chunks(LAYER)[0].name
        )
        job.params.channels, job.params.settings = list(range(n)), {**job.params.settings, "steps": steps}
        fv_chunk_job(job)
        return {"units": n * steps}
    if kind == "exemplar_grids":
        from resstream.activations.exemplars import write_exemplar_grids

        write_exemplar_grids(h5, LAYER, list(range(units)), exemplar_dir(work, LAYER))
        return {"units": units}
    from resstream.analysis.measure_job import run_block_measurement

    fv_dirs = []
    if kind == "measure_fv":  # stand-in FV pictures: what is timed is the measurement, not the FVs
        rng = np.random.default_rng(0)
        for layer in study.block_fv_layers(BLOCK):
            folder = Path(fv_chunk_dir(work, layer, "bench"))
            folder.mkdir(parents=True, exist_ok=True)
            for c in range(units):
                Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(folder / f"unit{c:04d}.png")
            with h5py.File(folder / "fv.h5", "w") as f:
                f["channels"] = np.arange(units)
                f["status"] = np.array([b"ok"] * units)
            fv_dirs.append(str(folder))
    run_block_measurement(
        kind.split("_")[1],
        BLOCK,
        list(range(units)),
        study.o_relu,
        model,
        h5,
        f"{work}/{kind}.csv",
        fv_dirs=fv_dirs,
        batch_size=config["analysis"]["batch_size"],
        device="cpu",
    )
    return {"units": units}


def budget(kind: str, units: int, images: int) -> tuple[float, int]:
    """(seconds, MB) the rules ask for at attempt 1, before rounding up to minutes."""
    from resstream.base import job_resources as jr

    if kind == "fv_chunk":
        return 60 * jr.START_MINUTES + units * jr.FV_SECONDS_PER_UNIT_STEP["cpu"], jr.fv_mem_mb(4)
    if kind == "activations":
        return 60 * jr.START_MINUTES + units / jr.PASS_IMAGES_PER_SECOND, jr.pass_mem_mb(64, 0, 0)
    mem = jr.measure_mem_mb(units, images) if kind.startswith("measure") else jr.small_job_mem_mb()
    return 60 * jr.START_MINUTES + units * jr.PER_UNIT_SECONDS[kind], mem


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:  # a child: one job, then its measurements on the last line
        import torch

        torch.set_num_threads(1)
        t0 = time.perf_counter()
        did = job(args.job, args.work, args.units, args.images)
        did["seconds"] = time.perf_counter() - t0
        did["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(did))
        return
    from helpers.sample_images import make_image_folder

    with tempfile.TemporaryDirectory() as work:
        make_image_folder(Path(work) / "images", n_classes=args.images)
        print(f"{'job':<17}{'units':>7}{'s':>8}{'s/unit':>9}{'budget s':>10}{'ratio':>7}{'RSS MB':>8}{'budget MB':>10}")
        for kind in ("activations", "fv_chunk", "exemplar_grids", "measure_fv", "measure_imagenet"):
            t0 = time.perf_counter()
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--job",
                    kind,
                    "--work",
                    work,
                    "--units",
                    str(args.units),
                    "--images",
                    str(args.images),
                ],
                capture_output=True,
                text=True,
                cwd=REPO,
            )
            if proc.returncode:
                sys.exit(f"{kind} failed:\n{proc.stderr[-3000:]}")
            did = json.loads(proc.stdout.splitlines()[-1])
            wall = time.perf_counter() - t0  # the whole process, start included
            allowed, mb = budget(kind, did["units"], args.images)
            print(
                f"{kind:<17}{did['units']:>7}{wall:>8.1f}{did['seconds'] / did['units']:>9.3f}{allowed:>10.0f}"
                f"{allowed / wall:>7.1f}{did['rss_mb']:>8.0f}{mb:>10}"
            )


if __name__ == "__main__":
    main()
