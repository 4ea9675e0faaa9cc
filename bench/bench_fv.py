"""FV throughput: the author's way against resstream's FV job, side by side in one run.

Author's way: one process per channel (python + torch + lucent import, model build), lucent
render_vis at batch 1 through the full network with weight gradients on.  resstream: one process
per layer chunk running ``resstream.fv.job.run_fv_chunk`` (frozen weights, truncated forward,
receptive-field crop, per-unit seeds).  Same random:SEED weights, same channels, steps, jitter
and objective (the author's B objective is relu(O) through Lucent's aliasing, so resstream runs
with hook=author_alias here to optimise the same function).

Prints per-layer seconds, the speed ratio per layer group, overall (equal weights) and
study-weighted (each group's time weighted by its share of the study's 4,672 units: layer1 192,
layer2 640, layer3 1,280, layer4 2,560, from the default study plan), and the median ratio of
final centre activations (resstream / author), each measured on the final image without
transforms.  ``--microbatch N`` also runs resstream with ``fv.microbatch: N`` (cropped units N per
forward on CPU: faster, not bit-identical across chunkings) and reports its speed-up and how far
its final activations move from the default's.  Both ways include their process starts (one per
unit for the author, one per layer for resstream), which weigh more at few steps than at 2,560.
Usage:  .venv/bin/python bench/bench_fv.py [--steps 32] [--channels 4] [--threads 1] [--microbatch N]
[--layer layer2.1.bn2,layer3.0.bn2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = [  # (layer, group): a mix from layer1 to layer4, both target kinds
    ("layer1.1.bn2", "layer1"),
    ("layer2.0.downsample.1", "layer2"),
    ("layer3.1.bn2", "layer3"),
    ("layer4.0.downsample.1", "layer4"),
]


def run_author(layer, channels, steps, jitter, threads, tmp):
    images, t0 = [], time.time()
    for c in channels:
        out = os.path.join(tmp, f"author_{layer}_{c}.npy")
        subprocess.run(
            [
                sys.executable,
                os.path.join(REPO, "bench", "author_fv_unit.py"),
                layer,
                str(c),
                str(steps),
                str(jitter),
                "0",
                str(threads),
                out,
            ],
            check=True,
            capture_output=True,
        )
        images.append(np.load(out))
    return time.time() - t0, np.stack(images)


RESSTREAM_JOB = """
import json, sys, torch
sys.path.insert(0, {repo!r})
torch.set_num_threads({threads})
from resstream.workflow.plan import StudyPlan
from resstream.workflow.config import validate_config
from resstream.fv.job import fv_chunk_job
from resstream.fv.jobs import fv_chunk_spec
cfg = validate_config(json.loads({cfg!r}))
# the fv_chunk job as its rule declares it
fv_chunk_job(fv_chunk_spec(StudyPlan(cfg)).job(output={{"folder": {out!r}}}, layer={layer!r}, chunk={chunk!r}))
"""


def run_resstream(layer, channels, steps, threads, tmp, device, microbatch=None):
    block = layer.split(".")[0][5:] + "." + layer.split(".")[1]
    tmp = os.path.join(tmp, f"mb{microbatch}")
    cfg = {
        "results": tmp,
        "model": {"weights": "random:0", "device": device},
        "study": {"blocks": [block], "channels": list(channels)},
        "fv": {"steps": steps, "hook": "author_alias", "channels_per_job": 1024, "microbatch": microbatch},
    }
    from resstream.workflow.config import validate_config
    from resstream.workflow.plan import StudyPlan

    chunk = StudyPlan(validate_config(cfg)).chunks(layer)[0].name
    out = os.path.join(tmp, "fv", layer, chunk)
    t0 = time.time()
    code = RESSTREAM_JOB.format(repo=REPO, threads=threads, cfg=json.dumps(cfg), layer=layer, chunk=chunk, out=out)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    import h5py

    with h5py.File(os.path.join(out, "fv.h5")) as f:
        images = np.transpose(f["image"][:], (0, 2, 3, 1))
    return time.time() - t0, images


def centre_activations(layer, channels, images_hwc, hook):
    import torch

    from resstream.data.dataset import IMAGENET_MEAN, IMAGENET_STD
    from resstream.model.blocks import parse_layer
    from resstream.model.taps import block_taps, center_activation
    from resstream.model.walk import model_blocks
    from resstream.model.weights import load_model

    model, _ = load_model("resnet18", "random:0")
    blocks = model_blocks(model)
    ref = parse_layer(blocks, layer)
    x = torch.from_numpy(np.ascontiguousarray(np.transpose(images_hwc, (0, 3, 1, 2)))).float()
    x = (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    with torch.no_grad():
        act = center_activation(block_taps(model, x, [ref], hook, blocks)[ref])
    return act[torch.arange(len(channels)), torch.tensor(channels)].numpy()


def study_units() -> dict[str, int]:
    """Units per layer group in the default study plan (4,672 in all)."""
    from resstream.workflow.config import validate_config
    from resstream.workflow.plan import StudyPlan

    study = StudyPlan(validate_config({}))
    units: dict[str, int] = {}
    for layer in study.layers:
        group = layer.split(".")[0]
        units[group] = units.get(group, 0) + sum(len(c.channels) for c in study.chunks(layer))
    return units


def run_layer(layer, group, jitter, args, tmp) -> dict:
    channels = list(range(args.channels))
    t_author, im_author = run_author(layer, channels, args.steps, jitter, args.threads, tmp)
    t_ours, im_ours = run_resstream(layer, channels, args.steps, args.threads, tmp, args.device)
    row = {
        "group": group,
        "layer": layer,
        "author": t_author,
        "ours": t_ours,
        "act_author": centre_activations(layer, channels, im_author, "author_alias"),
        "act_ours": centre_activations(layer, channels, im_ours, "author_alias"),
    }
    line = f"{group:7s} {layer:24s} author {t_author:7.1f} s   resstream {t_ours:7.1f} s   speed-up x{t_author / t_ours:5.2f}"
    if args.microbatch:
        row["mb"], im_mb = run_resstream(layer, channels, args.steps, args.threads, tmp, args.device, args.microbatch)
        row["act_mb"] = centre_activations(layer, channels, im_mb, "author_alias")
        line += f"   microbatch {args.microbatch}: {row['mb']:7.1f} s (x{t_author / row['mb']:5.2f})"
    print(
        line + f"   median act author {np.median(row['act_author']):7.3f} resstream {np.median(row['act_ours']):7.3f}",
        flush=True,
    )
    return row


def summarise(rows, args) -> None:
    units = study_units()
    weight = {r["group"]: units[r["group"]] / sum(units.values()) for r in rows}
    total_a, total_o = sum(r["author"] for r in rows), sum(r["ours"] for r in rows)
    weighted_a = sum(weight[r["group"]] * r["author"] for r in rows)
    weighted_o = sum(weight[r["group"]] * r["ours"] for r in rows)
    print(f"\n{args.channels} channels x {args.steps} steps per layer, {args.threads} thread(s), device {args.device}")
    print(
        f"overall (equal weights): author {total_a:.1f} s, resstream {total_o:.1f} s, speed-up x{total_a / total_o:.2f}"
    )
    print(
        f"study-weighted ({', '.join(f'{g} {units[g]}' for g in weight)} of {sum(units.values())} units): "
        f"speed-up x{weighted_a / weighted_o:.2f}"
    )
    ratios = np.concatenate([r["act_ours"] / np.where(r["act_author"] == 0, np.nan, r["act_author"]) for r in rows])
    print(
        f"final centre activation, median of per-unit ratios resstream/author: {np.nanmedian(ratios):.3f} "
        f"(units where the author's stayed at 0 are left out: {int(np.isnan(ratios).sum())})"
    )
    if args.microbatch:
        weighted_m = sum(weight[r["group"]] * r["mb"] for r in rows)
        moved = np.concatenate(
            [np.abs(r["act_mb"] - r["act_ours"]) / np.maximum(np.abs(r["act_ours"]), 1e-6) for r in rows]
        )
        print(
            f"fv.microbatch {args.microbatch}: study-weighted speed-up x{weighted_a / weighted_m:.2f} over the author's "
            f"(x{weighted_o / weighted_m:.2f} over the default); final activations moved from the default's by "
            f"median {np.median(moved):.2e}, max {moved.max():.2e} (relative; 0 = the same bits)"
        )
    if {r["group"] for r in rows} == set(units):

        def core_hours(key):
            return (
                sum(units[r["group"]] * 2560 * r[key] / (args.channels * args.steps) for r in rows)
                * args.threads
                / 3600
            )

        print(
            f"projection for the study (4,672 units x 2,560 steps) from these per-unit-step costs: resstream "
            f"{core_hours('ours'):.0f} core-hours, author {core_hours('author'):.0f} (process starts included at this step count)"
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--layers", default="layer1,layer2,layer3,layer4", help="layer groups to run")
    ap.add_argument("--layer", help="comma-separated FV layers to run instead of the groups' representatives")
    ap.add_argument("--microbatch", type=int, help="also run resstream with fv.microbatch N")
    args = ap.parse_args()
    sys.path.insert(0, REPO)
    from resstream.workflow.config import validate_config
    from resstream.workflow.plan import StudyPlan

    study = StudyPlan(validate_config({}))
    with tempfile.TemporaryDirectory() as tmp:
        chosen = [(name, name.split(".")[0]) for name in args.layer.split(",")] if args.layer else LAYERS
        rows = [
            run_layer(layer, group, study.fv_settings(layer).jitter, args, tmp)
            for layer, group in chosen
            if group in args.layers.split(",")
        ]
    summarise(rows, args)


if __name__ == "__main__":
    main()
