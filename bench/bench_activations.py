"""Dataset activations: resstream's one streaming pass against the author's approach, same images.

* resstream: ``extract_activations`` end to end (DataLoader decoding in workers, ONE forward per
  batch that stops after the deepest tap and reads all 18 layers, HDF5 writing, top-k).
* author (docs/method.md#imagenet-variant-a3, docs/performance.md): every image decoded once and held in RAM, then for each of the 18 layers one
  full network pass over all of them with a forward hook that copies the layer's map (as
  thingsvision does), keeping the centre neuron.

Both read the paper-era code's 18 layers (``study.o_relu: post``) and their values are compared.
Prints images/s of each and the ratio (goal: >= 10x).

    .venv/bin/python bench/bench_activations.py [--images 128] [--batch-size 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from resstream.activations.jobs import activations_spec  # noqa: E402
from resstream.activations.store import open_activations  # noqa: E402
from resstream.activations.stream import activations_job  # noqa: E402
from resstream.data.dataset import ImageFolderDataset  # noqa: E402
from resstream.model.weights import load_model  # noqa: E402
from resstream.workflow.config import validate_config  # noqa: E402
from resstream.workflow.plan import StudyPlan  # noqa: E402


def link_images(sample: Path, dest: Path, n: int) -> Path:
    """The first n images of the sample (one per class folder) as symlinks: nothing is copied."""
    count = 0
    for cls in sorted(os.listdir(sample)):
        for f in sorted(os.listdir(sample / cls)):
            if count == n:
                return dest
            (dest / cls).mkdir(parents=True, exist_ok=True)
            (dest / cls / f).symlink_to(sample / cls / f)
            count += 1
    return dest


def author_way(config: dict, layers: list[str], batch_size: int, workers: int) -> tuple[dict, float]:
    """All images in RAM, then one full forward pass over them per layer (thingsvision-style hook)."""
    t0 = time.perf_counter()
    model, _ = load_model(config["model"]["arch"], config["model"]["weights"], allow_download=False)
    loader = torch.utils.data.DataLoader(
        ImageFolderDataset(config["dataset"]["path"]), batch_size=batch_size, num_workers=workers
    )
    images = torch.cat([x for x, _, _ in loader])  # the author's ~30 GB for ImageNet val
    out = {}
    for layer in layers:
        kept = []
        hook = model.get_submodule(layer).register_forward_hook(lambda m, a, o: kept.append(o.clone()))
        with torch.no_grad():
            for r0 in range(0, len(images), batch_size):
                model(images[r0 : r0 + batch_size])
        hook.remove()
        maps = torch.cat(kept)
        out[layer] = maps[:, :, maps.shape[2] // 2, maps.shape[3] // 2].numpy()
    return out, time.perf_counter() - t0


def run_one(which: str, args) -> dict:
    """One approach in this process: its wall time and values (``--only``)."""
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = link_images(Path(args.sample), Path(tmp) / "images", args.images)
        config = validate_config(
            {
                "model": {"weights": "random:0", "device": "cpu", "allow_download": False},
                "dataset": {"path": str(root)},
                "study": {"o_relu": "post"},  # the paper-era code's 18 layers (docs/method.md#taps-i-b-and-o)
                "activations": {"batch_size": args.batch_size, "workers": args.workers, "log_every": 10**6},
            }
        )
        layers = StudyPlan(config).activation_layers()
        assert len(layers) == 18, layers
        if which == "author":
            values, seconds = author_way(config, layers, args.batch_size, args.workers)
            return {"seconds": seconds, "values": values, "layers": layers}
        job = activations_spec(StudyPlan(config)).job(
            output={"h5": str(Path(tmp) / "activations.h5")}, input={"images": None}
        )
        t0 = time.perf_counter()
        path = activations_job(job)  # the activations rule's job
        seconds = time.perf_counter() - t0
        with open_activations(path) as f:
            values = {name: f["layers"][name][:] for name in layers}
        return {"seconds": seconds, "values": values, "layers": layers, "mb": os.path.getsize(path) / 2**20}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--sample",
        default=str(REPO / "data" / "imagenet-sample"),
        help="image folder (default: the demo sample, resstream fetch-sample puts it there)",
    )
    parser.add_argument("--only", choices=["ours", "author"], help=argparse.SUPPRESS)  # one run, pickled to stdout
    args = parser.parse_args()
    if args.only:
        sys.stdout.buffer.write(pickle.dumps(run_one(args.only, args)))
        return

    print(
        f"{args.images} images, 18 layers, batch {args.batch_size}, {args.threads} torch threads, "
        f"{args.workers} decoding workers, {os.cpu_count()} CPUs, torch {torch.__version__}"
    )
    # Each run in its own process (extract_activations changes glibc's malloc settings process-wide);
    # ours before AND after the author's, so a change in the machine's load during the long author
    # run does not decide the ratio.
    runs = []
    for which in ("ours", "author", "ours"):
        proc = subprocess.run(
            [sys.executable, __file__, "--only", which] + sys.argv[1:], capture_output=True, check=True
        )
        runs.append(pickle.loads(proc.stdout))
    ours_s = [runs[0]["seconds"], runs[2]["seconds"]]
    author_s = runs[1]["seconds"]
    layers = runs[1]["layers"]
    diff = max(float(np.abs(r["values"][n] - runs[1]["values"][n]).max()) for r in (runs[0], runs[2]) for n in layers)
    ours_rate = args.images / (sum(ours_s) / 2)
    author_rate = args.images / author_s
    print(f"{'approach':<46}{'seconds':>16}{'img/s':>9}")
    print(
        f"{'resstream: one pass, 18 layers tapped, HDF5':<46}{ours_s[0]:>7.1f} / {ours_s[1]:>6.1f}{ours_rate:>9.2f}"
        f"   (before / after the author's run; img/s of the mean)"
    )
    print(f"{'author: images in RAM, one full pass per layer':<46}{author_s:>16.1f}{author_rate:>9.2f}")
    print(
        f"speed-up: x{ours_rate / author_rate:.1f} (goal >= 10); max |difference| of the 18 layers' values: "
        f"{diff:.2e}; file {runs[0]['mb']:.1f} MB"
    )
    print(
        f"projected for 50,000 images: resstream {50000 / ours_rate / 3600:.2f} h, author {50000 / author_rate / 3600:.1f} h "
        f"(+ {50000 * 3 * 224 * 224 * 4 / 1e9:.0f} GB of images in RAM)"
    )


if __name__ == "__main__":
    main()
