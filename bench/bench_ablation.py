"""Lesions: the author's way against resstream's batched evaluation, same images, same conditions.

* author (scale_robust.py): one full pass over the folder per condition: every image decoded and
  transformed again, the full lesioned network run on it;
* resstream (:func:`resstream.ablation.evaluate.evaluate_lesions`): every image decoded once, the
  plain network run once per batch, only the layers after the lesioned block per condition (these
  are lesions at the block's sum).

Conditions: the author's 11 at one scale (a mean lesion of a block's set at its sum, and 10 random
size-matched trials).  Prints the time of each, the speed-up, images/s per condition, their
accuracies (must be equal) and the projection for the author's full experiment, 50,000 images ×
66 conditions (11 × 6 scales): on this CPU from the measured rates, and on one GPU from the FLOPs
(``torch.utils.flop_counter``, convolutions and matmuls; JPEG decoding is not in them).

    RESSTREAM_SAMPLE=/path/imagenet-sample .venv/bin/python bench/bench_ablation.py [--images 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402
from bench_activations import link_images  # noqa: E402
from fv_flops import PEAKS_TFLOPS  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from resstream.ablation.channel_sets import random_sets, set_seed  # noqa: E402
from resstream.ablation.evaluate import Condition, evaluate_lesions, forward_from, image_batches  # noqa: E402
from resstream.ablation.lesion import Lesion, lesioned  # noqa: E402
from resstream.ablation.scales import Scale, scale_transform  # noqa: E402
from resstream.data.image_folder import scan_image_folder  # noqa: E402
from resstream.model.blocks import block_lookup  # noqa: E402
from resstream.model.walk import model_blocks  # noqa: E402
from resstream.model.weights import load_model  # noqa: E402

FULL_IMAGES, FULL_CONDITIONS, FULL_SCALES = 50_000, 66, 6


class AuthorFolder(torch.utils.data.Dataset):
    """The author's loader: decode and transform at one scale, every pass."""

    def __init__(self, root, records, scale):
        self.root, self.records, self.transform = root, records, scale_transform(scale)

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        from PIL import Image

        rec = self.records[i]
        with Image.open(f"{self.root}/{rec.path}") as img:
            return self.transform(img.convert("RGB")), rec.class_id


def author_conditions(info, block: str, set_size: int) -> list[Condition]:
    """The author's 11 conditions: a mean lesion of ``set_size`` channels at the block's sum and 10
    size-matched random trials (the constants do not change the work)."""
    target = tuple(range(0, 2 * set_size, 2))
    values = tuple(0.1 for _ in target)
    conds = [Condition("list", "mean", -1, Lesion(block, "O", target, values))]
    return conds + [
        Condition("random:list", "mean", t, Lesion(block, "O", c, values))
        for t, c in enumerate(random_sets(info.channels, target, 10, set_seed(0, block, "list")))
    ]


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def author_way(
    model, info, conds, root, records, scale, batch_size, workers, device="cpu"
) -> tuple[list[float], float]:
    t0 = time.perf_counter()
    accs = []
    for cond in conds:
        correct = 0
        loader = torch.utils.data.DataLoader(
            AuthorFolder(root, records, scale), batch_size=batch_size, num_workers=workers
        )
        with torch.inference_mode(), lesioned(model, info, cond.lesion):
            for x, y in loader:
                correct += int((model(x.to(device)).argmax(1).cpu() == y).sum())
        accs.append(100 * correct / len(records))
    _sync(device)
    return accs, time.perf_counter() - t0


def batched_way(
    model, blocks, block, conds, root, records, scale, batch_size, workers, device="cpu"
) -> tuple[list[float], float]:
    """resstream's evaluation of the same conditions: (accuracies of the conditions, seconds)."""
    t0 = time.perf_counter()
    rows = evaluate_lesions(
        model, blocks, {block: conds}, image_batches(root, records, [scale], batch_size, workers), [scale], device
    )
    _sync(device)
    return [r["accuracy"] for r in rows if r["set"] != "none"], time.perf_counter() - t0


def flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def gpu_projection(model, blocks, info, utilisation: float) -> dict:
    """Seconds on one GPU for the full experiment, each way, from the FLOPs of one image."""
    x = torch.zeros(1, 3, 224, 224)
    with torch.inference_mode():
        full = flops(lambda: model(x))
        block_out = {}
        hook = model.get_submodule(info.module).register_forward_hook(lambda m, a, out: block_out.update(x=out))
        model(x)
        hook.remove()
        tail = flops(lambda: forward_from(model, blocks, info, block_out["x"], after=True))
    author = full * FULL_IMAGES * FULL_CONDITIONS
    ours = (full + tail * FULL_CONDITIONS / FULL_SCALES) * FULL_IMAGES * FULL_SCALES
    peak = PEAKS_TFLOPS["fp32"] * 1e12 * utilisation
    return {"flops_full": full, "flops_tail": tail, "author_s": author / peak, "ours_s": ours / peak}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--block", default="2.1")
    ap.add_argument("--set-size", type=int, default=23, help="the author's 23 channels of 2.1")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--utilisation", type=float, default=0.3, help="assumed fraction of the GPU's fp32 peak")
    args = ap.parse_args()
    sample = os.environ.get("RESSTREAM_SAMPLE")
    if not sample:
        sys.exit("resstream: bench_ablation needs images; set RESSTREAM_SAMPLE to the demo sample's folder")
    torch.set_num_threads(args.threads)
    model, _ = load_model("resnet18", "random:0", allow_download=False)
    blocks = model_blocks(model)
    info = block_lookup(blocks, args.block)
    conds = author_conditions(info, args.block, args.set_size)
    scale = Scale(1.0)
    with tempfile.TemporaryDirectory() as tmp:
        root = link_images(Path(sample).resolve(), Path(tmp), args.images)  # links work from any folder
        records = scan_image_folder(root)
        author_acc, author_s = author_way(model, info, conds, root, records, scale, args.batch_size, args.workers)
        ours_acc, ours_s = batched_way(
            model, blocks, args.block, conds, root, records, scale, args.batch_size, args.workers
        )
    n, k = len(records), len(conds)
    print(
        f"{n} images x {k} conditions at scale 1, block {args.block}, {args.threads} threads, batch {args.batch_size}"
    )
    print(f"author:    {author_s:8.1f} s  {n * k / author_s:7.1f} images/s per condition")
    print(f"resstream: {ours_s:8.1f} s  {n * k / ours_s:7.1f} images/s per condition (plain network included)")
    print(f"speed-up:  {author_s / ours_s:.2f}x; accuracies equal: {author_acc == ours_acc}")
    per_image_author, per_image_ours = author_s / (n * k), ours_s / (n * k)
    full = FULL_IMAGES * FULL_CONDITIONS
    print(
        f"projection, {FULL_IMAGES} images x {FULL_CONDITIONS} conditions on this CPU: "
        f"author {full * per_image_author / 3600:.1f} h, resstream {full * per_image_ours / 3600:.1f} h"
    )
    gpu = gpu_projection(model, blocks, info, args.utilisation)
    print(
        f"projection on one H100 (fp32 {PEAKS_TFLOPS['fp32']} TFLOP/s x {args.utilisation} assumed use; "
        f"{gpu['flops_full'] / 1e9:.2f} GFLOP full forward, {gpu['flops_tail'] / 1e9:.2f} GFLOP after block "
        f"{args.block}): author {gpu['author_s'] / 60:.1f} min, resstream {gpu['ours_s'] / 60:.1f} min "
        f"(compute only; decoding 50,000 JPEGs x 66 vs x 1 comes on top)"
    )


if __name__ == "__main__":
    main()
