"""GPU readiness in one run: agreement with the CPU, FV throughput against lucent at batch 1, each
speed option, repeatability, the dataset pass and GPU pinning.  Prints a table, writes one JSON file.

    make gpu-check                                   # one GPU, the defaults below, ≤ 8 min (budget)
    .venv/bin/python bench/gpu_check.py --out results/gpu_check.json [--device cuda]
    .venv/bin/python bench/gpu_check.py --device cpu --tiny --out /tmp/gpu_check.json   # dry run (tests)

Each layer group is represented by its deepest FV layer's B (layer1.1.bn2 ... layer4.1.bn2), the
costliest forward of the group, so the projection for the whole study (4,672 units × 2,560 steps,
units per group from the default study plan) is an upper bound.

* agreement: a few units per group on the device with the GPU path (batched transforms, fixed-order
  backward) against the CPU default: same statuses, same dead units, final centre activations
  within ``AGREE_TOLERANCE`` (relative).  Adam amplifies last-bit differences, so two correct runs
  drift apart over the steps: the tolerance is loose by design.
* throughput: a chunk of ``--units`` units at ``--steps`` steps against lucent's ``render_vis`` at
  batch 1 (the author's way: full network, weight gradients on, one unit after another) on the
  same device, units and steps; lucent runs the first ``--lucent-units`` of them (its batch-1 rate
  does not depend on how many it runs in a row).  Unit-steps/s, ratio, peak device memory, FLOPs
  reached, projected hours for the study.
* options: ``fv.tf32``, ``fv.bf16``, ``channels_last`` off, ``rf_crop`` off, torch's own
  (nondeterministic on CUDA) backward, lucent's per-unit transforms: speed and effect on the final
  activations against the default, same units and steps.  (No ``torch.compile`` or CUDA graphs:
  the random scale changes input sizes every step.)
* repeat: the same chunk twice: bit-identical or not (GPU: meant to be), and torch's warnings about
  operations without a deterministic CUDA kernel.
* dataset: the dataset pass (``extract_activations``) over generated JPEGs with N decoding workers:
  img/s and the projection for 50,000 images.
* lesions: the ablation stage's batched lesion evaluation against the author's way (one full pass
  per condition, images decoded each time; ``bench/bench_ablation.py``) on generated JPEGs, the
  author's 11 conditions at one scale (block 2.1, 23 channels): images/s per condition each way,
  the speed-up, equal accuracies, and the author's full experiment (50,000 images × 66 conditions)
  projected from the measured rates.
* dictionary: the dictionary stage's crosscoder training (schema defaults: encoder on I+B, 8 x 2C
  latents, k 32, batch 4096) on synthetic tokens of each group's widest block, on the device:
  tokens/s, and the projection for every studied block (``dictionary.tokens`` tokens each).
* gpus: with two or more GPUs visible, two FV jobs started together must land on distinct devices
  (``resstream/base/gpu_slots.py``); with one, skipped and says why; with ``--device cpu``, the lock-slot
  logic runs with two pretended devices (CUDA_VISIBLE_DEVICES=0,1) and FVs on the CPU.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

GROUPS = {"layer1": "layer1.1.bn2", "layer2": "layer2.1.bn2", "layer3": "layer3.1.bn2", "layer4": "layer4.1.bn2"}
AGREE_TOLERANCE = 0.15  # |device - cpu| / max(|device|, |cpu|) of each unit's final centre activation
GPU_PATH = dict(batched_transforms=True, deterministic_backward=True)  # the CUDA defaults, forced on any device
OPTIONS = {  # name: render_units arguments on top of GPU_PATH
    "default": {},
    "fv.tf32": dict(tf32=True),
    "fv.bf16": dict(bf16=True),
    "channels_last off": dict(channels_last=False),
    "rf_crop off": dict(rf_crop=False),
    "torch's backward": dict(deterministic_backward=False),
    "per-unit transforms": dict(batched_transforms=False, deterministic_backward=False),
}
FULL = dict(
    units=64,
    steps=256,
    lucent_units=16,
    agree_units=3,
    agree_steps=32,
    option_steps=128,
    repeat_units=16,
    repeat_steps=64,
    images=2000,
    lesion_images=512,
    option_groups=list(GROUPS),
    repeat_groups=list(GROUPS),
    dictionary_steps=40,
    dictionary_batch=4096,
)
TINY = dict(
    units=2,
    steps=2,
    lucent_units=1,
    agree_units=1,
    agree_steps=2,
    option_steps=2,
    repeat_units=2,
    repeat_steps=2,
    images=16,
    lesion_images=2,
    workers=0,
    option_groups=["layer2"],
    repeat_groups=["layer2"],
    dictionary_steps=2,
    dictionary_batch=64,
)
STUDY_STEPS = 2560
DATASET_IMAGES = 50_000


class Check:
    """The model, device and sizes of one run, and its results."""

    def __init__(self, args, sizes: dict):
        import torch

        from resstream.model.walk import model_blocks
        from resstream.model.weights import load_model
        from resstream.workflow.config import validate_config
        from resstream.workflow.plan import StudyPlan

        self.torch, self.args, self.sizes = torch, args, sizes
        self.device = torch.device(args.device)
        self.model, self.identity = load_model("resnet18", args.weights, allow_download=False)
        self.blocks = model_blocks(self.model)
        study = StudyPlan(validate_config({}))
        self.study_units = {
            g: sum(len(c.channels) for layer in study.layers if layer.startswith(g + ".") for c in study.chunks(layer))
            for g in GROUPS
        }
        self.jitter = {g: study.fv_settings(layer).jitter for g, layer in GROUPS.items()}
        self.warnings: list[str] = []
        self.results: dict = {}

    def sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def render(self, group: str, channels, steps: int, device=None, **options):
        """(FVResult, seconds, peak device MiB) of one chunk, on a fresh copy of the model."""
        from resstream.fv.render import render_units
        from resstream.model.blocks import parse_layer
        from resstream.workflow.plan import schema_fv_settings

        torch, device = self.torch, device or self.device
        layer = GROUPS[group]
        model = copy.deepcopy(self.model).to(device)

        def run(n_steps):
            return render_units(
                model,
                self.blocks,
                layer,
                parse_layer(self.blocks, layer),
                list(channels),
                **schema_fv_settings(steps=n_steps, jitter=self.jitter[group], **options),
            )

        if not self.args.tiny:
            run(2)  # cuDNN set-up, crop plans, warp matrices: not timed
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        result = run(steps)
        if device.type == "cuda":
            torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
        return result, time.perf_counter() - t0, peak


def relative_difference(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-6)


def agreement(check: Check) -> dict:
    from resstream.model.blocks import block_lookup, parse_layer

    cpu = check.torch.device("cpu")
    out, passed = {}, True
    for group, layer in GROUPS.items():
        n = block_lookup(check.blocks, parse_layer(check.blocks, layer).block).channels
        channels = sorted({0, n // 2, n - 1})[: check.sizes["agree_units"]]
        steps = check.sizes["agree_steps"]
        on_device, _, _ = check.render(group, channels, steps, **GPU_PATH)
        on_cpu, _, _ = check.render(group, channels, steps, device=cpu)
        rel = relative_difference(on_device.final_activation, on_cpu.final_activation)
        same_status = on_device.status == on_cpu.status
        ok = bool(same_status and np.all(rel <= AGREE_TOLERANCE))
        passed &= ok
        out[group] = {
            "layer": layer,
            "channels": channels,
            "steps": steps,
            "status_device": on_device.status,
            "status_cpu": on_cpu.status,
            "dead_same": same_status or _dead(on_device) == _dead(on_cpu),
            "final_device": on_device.final_activation.tolist(),
            "final_cpu": on_cpu.final_activation.tolist(),
            "max_relative_difference": float(rel.max()),
            "pass": ok,
        }
    return {"tolerance": AGREE_TOLERANCE, "groups": out, "pass": passed}


def _dead(result) -> list[int]:
    return [c for c, s in zip(result.channels, result.status) if s == "dead"]


def lucent_rate(check: Check, group: str, channels, steps: int) -> dict:
    """lucent render_vis at batch 1 on the device, the author's transforms, weight gradients on."""
    from lucent.optvis import objectives, param, render

    from resstream.fv.render import lucent_on
    from resstream.fv.transforms import lucent_transforms

    torch = check.torch
    models = [
        copy.deepcopy(check.model).to(check.device).requires_grad_(True) for _ in channels
    ]  # hooks stay on a model
    name = GROUPS[group].replace(".", "_")

    def one(model, channel, n_steps):
        render.render_vis(
            model,
            objectives.neuron(name, channel),
            param_f=lambda: param.image(224, decorrelate=True),
            transforms=lucent_transforms(check.jitter[group]),
            thresholds=(n_steps,),
            show_image=False,
            progress=False,
        )

    with lucent_on(check.device), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not check.args.tiny:
            one(copy.deepcopy(models[0]), channels[0], 2)
        if check.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for model, channel in zip(models, channels):
            one(model, channel, steps)
        check.sync()
        seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if check.device.type == "cuda" else None
    return {
        "units": len(channels),
        "steps": steps,
        "seconds": seconds,
        "unit_steps_per_s": len(channels) * steps / seconds,
        "peak_mib": peak,
    }


def throughput(check: Check) -> dict:
    from fv_flops import lucent_step_flops, step_flops

    units, steps = check.sizes["units"], check.sizes["steps"]
    out = {}
    for group, layer in GROUPS.items():
        channels = list(range(units))
        result, seconds, peak = check.render(group, channels, steps, **GPU_PATH)
        rate = units * steps / seconds
        lucent = lucent_rate(check, group, channels[: check.sizes["lucent_units"]], steps)
        flops, side = step_flops(check.model, check.blocks, layer)
        out[group] = {
            "layer": layer,
            "units": units,
            "steps": steps,
            "seconds": seconds,
            "unit_steps_per_s": rate,
            "peak_mib": peak,
            "input_px": side,
            "gflop_per_unit_step": flops / 1e9,
            "tflop_per_s": flops * rate / 1e12,
            "lucent": lucent,
            "ratio": rate / lucent["unit_steps_per_s"],
            "memory": {k: result.settings.get(k) for k in ("free_bytes", "units_that_fit", "oom_splits")},
        }
    study = {g: check.study_units[g] for g in GROUPS}
    hours = sum(study[g] * STUDY_STEPS / out[g]["unit_steps_per_s"] for g in GROUPS) / 3600
    lucent_hours = sum(study[g] * STUDY_STEPS / out[g]["lucent"]["unit_steps_per_s"] for g in GROUPS) / 3600
    return {
        "groups": out,
        "study_units": study,
        "study_steps": STUDY_STEPS,
        "lucent_gflop_per_unit_step": lucent_step_flops(check.model) / 1e9,
        "projected_hours": hours,
        "lucent_projected_hours": lucent_hours,
        "study_ratio": lucent_hours / hours,
    }


def options(check: Check) -> dict:
    units, steps = check.sizes["units"], check.sizes["option_steps"]
    out = {}
    for group in check.sizes["option_groups"]:
        rows = {}
        for name, extra in OPTIONS.items():
            result, seconds, peak = check.render(group, range(units), steps, **{**GPU_PATH, **extra})
            rows[name] = {
                "unit_steps_per_s": units * steps / seconds,
                "peak_mib": peak,
                "final": result.final_activation.tolist(),
                "status": result.status,
            }
        base = rows["default"]
        for row in rows.values():
            rel = relative_difference(row["final"], base["final"])
            row.update(
                speedup=row["unit_steps_per_s"] / base["unit_steps_per_s"],
                median_relative_difference=float(np.median(rel)),
                max_relative_difference=float(rel.max()),
                status_changes=sum(a != b for a, b in zip(row["status"], base["status"])),
            )
        out[group] = {"layer": GROUPS[group], "units": units, "steps": steps, "options": rows}
    return out


def repeat(check: Check) -> dict:
    out = {}
    for group in check.sizes["repeat_groups"]:
        channels = range(check.sizes["repeat_units"])
        first, _, _ = check.render(group, channels, check.sizes["repeat_steps"], **GPU_PATH)
        second, _, _ = check.render(group, channels, check.sizes["repeat_steps"], **GPU_PATH)
        out[group] = {
            "bit_identical": bool(
                np.array_equal(first.images, second.images) and np.array_equal(first.curve, second.curve)
            ),
            "max_abs_image_difference": float(np.abs(first.images - second.images).max()),
        }
    return out


def generated_images(root: str, n: int) -> str:
    """``n`` JPEGs of ImageNet's typical size (500×375), smooth colour fields with noise, in class folders."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = os.path.join(root, f"n{i % 100:08d}")
        os.makedirs(folder, exist_ok=True)
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(coarse).resize((500, 375), Image.BICUBIC), dtype=np.int16)
        img = np.clip(img + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(folder, f"img{i:06d}.JPEG"), quality=90)
    return root


def dataset_pass(check: Check) -> dict:
    from resstream.activations.jobs import activations_spec
    from resstream.activations.stream import activations_job
    from resstream.workflow.config import validate_config
    from resstream.workflow.plan import StudyPlan

    workers = check.sizes.get("workers", min(8, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        root = generated_images(os.path.join(tmp, "images"), check.sizes["images"])
        config = validate_config(
            {
                "model": {"weights": check.args.weights, "device": check.args.device, "allow_download": False},
                "dataset": {"path": root},
                "activations": {"workers": workers, "log_every": 10**6},
            }
        )
        run = config["activations"]
        job = activations_spec(StudyPlan(config)).job(
            output={"h5": os.path.join(tmp, "activations.h5")}, input={"images": None}
        )
        t0 = time.perf_counter()
        activations_job(job)  # the activations rule's job
        seconds = time.perf_counter() - t0
    rate = check.sizes["images"] / seconds
    return {
        "images": check.sizes["images"],
        "workers": workers,
        "batch_size": run["batch_size"],
        "seconds": seconds,
        "img_per_s": rate,
        "projected_minutes_50000": DATASET_IMAGES / rate / 60,
        "note": "end to end: model load, worker start, decoding, one forward per batch, HDF5 writing",
    }


def lesions(check: Check) -> dict:
    from bench_ablation import FULL_CONDITIONS, FULL_IMAGES, author_conditions, author_way, batched_way

    from resstream.ablation.scales import Scale
    from resstream.data.image_folder import scan_image_folder
    from resstream.model.blocks import block_lookup

    block, n = "2.1", check.sizes["lesion_images"]
    workers, batch = check.sizes.get("workers", min(8, os.cpu_count() or 1)), 64
    model = copy.deepcopy(check.model).to(check.device).eval()
    conds = author_conditions(block_lookup(check.blocks, block), block, 23)
    with tempfile.TemporaryDirectory() as tmp:
        root = generated_images(os.path.join(tmp, "images"), n)
        records = scan_image_folder(root)
        run = (model, block_lookup(check.blocks, block), conds, root, records, Scale(1.0), batch, workers, check.device)
        author_acc, author_s = author_way(*run)
        ours_acc, ours_s = batched_way(model, check.blocks, block, *run[2:])
    k = len(conds)
    return {
        "block": block,
        "images": n,
        "conditions": k,
        "workers": workers,
        "batch_size": batch,
        "author_seconds": author_s,
        "seconds": ours_s,
        "author_img_per_s_per_condition": n * k / author_s,
        "img_per_s_per_condition": n * k / ours_s,
        "speedup": author_s / ours_s,
        "accuracies_equal": author_acc == ours_acc,
        "projected_hours_full": FULL_IMAGES * FULL_CONDITIONS * ours_s / (n * k) / 3600,
        "author_projected_hours_full": FULL_IMAGES * FULL_CONDITIONS * author_s / (n * k) / 3600,
    }


PIN_JOB = """
import json, os, sys, time
sys.path.insert(0, {repo!r})
from resstream.base.gpu_slots import pin_gpu
claimed = time.time()
slot = pin_gpu({lock!r}, poll_seconds=0.2)
import torch
from resstream.model.blocks import parse_layer
from resstream.model.walk import model_blocks
from resstream.fv.render import render_units
from resstream.model.weights import load_model
from resstream.workflow.plan import schema_fv_settings
device = torch.device({device!r})
model, _ = load_model("resnet18", {weights!r}, allow_download=False)
blocks = model_blocks(model.to(device))
result = render_units(model, blocks, "layer2.1.bn2", parse_layer(blocks, "layer2.1.bn2"), [0, 1],
                      **schema_fv_settings(steps={steps}, jitter=4))
uuid = str(torch.cuda.get_device_properties(0).uuid) if device.type == "cuda" else None
print(json.dumps(dict(slot=slot, visible=os.environ.get("CUDA_VISIBLE_DEVICES"), uuid=uuid, status=result.status,
                      claimed=claimed, finished=time.time())))
"""


def dictionary_training(check: Check) -> dict:
    """Crosscoder training tokens/s per group's last block (bench/bench_dictionary.py's step: loss,
    backward, Adam, decoder renorm) on the device, and the hours to train every studied block."""
    from types import SimpleNamespace

    from bench_dictionary import block_config, training_rate

    from resstream.base.schema import default
    from resstream.model.blocks import default_study_blocks, parse_layer

    sizes, rows = check.sizes, {}
    channels = {b.name: b.channels for b in check.blocks}
    for group, layer in GROUPS.items():
        block = parse_layer(check.blocks, layer).block
        cfg = block_config(channels[block], SimpleNamespace(batch_size=sizes["dictionary_batch"]))
        rate = training_rate(cfg, sizes["dictionary_steps"], str(check.device))
        rows[group] = {
            "block": block,
            "channels": channels[block],
            "latents": cfg["n_latents"],
            "batch_size": cfg["batch_size"],
            "steps": sizes["dictionary_steps"],
            "tokens_per_s": rate,
        }
    tokens = default("dictionary.tokens")
    studied = default_study_blocks(check.blocks)
    width_rate = {row["channels"]: row["tokens_per_s"] for row in rows.values()}
    hours = sum(tokens / width_rate[channels[b]] for b in studied) / 3600
    return {"groups": rows, "study_blocks": studied, "tokens_per_block": tokens, "projected_hours": hours}


def several_gpus(check: Check) -> dict:
    torch = check.torch
    if check.device.type == "cuda":
        count = torch.cuda.device_count()
        if count < 2:
            return {"skipped": f"{count} GPU visible: two FV jobs need two GPUs to land on distinct devices"}
        env, simulated = dict(os.environ), False
    else:
        env, simulated = dict(os.environ, CUDA_VISIBLE_DEVICES="0,1"), True  # two pretended devices
    with tempfile.TemporaryDirectory() as lock:
        code = PIN_JOB.format(
            repo=REPO, lock=lock, device=check.args.device, weights=check.args.weights, steps=check.sizes["steps"]
        )
        jobs = [
            subprocess.Popen(
                [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            )
            for _ in range(2)
        ]
        outs = [job.communicate(timeout=600) for job in jobs]
    if any(job.returncode for job in jobs):
        raise RuntimeError(
            "a pinned FV job failed: " + " | ".join(err.strip().splitlines()[-1] for _, err in outs if err.strip())
        )
    runs = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    overlap = max(r["claimed"] for r in runs) < min(r["finished"] for r in runs)
    distinct = len({r["slot"] for r in runs}) == 2 and (simulated or len({r["uuid"] for r in runs}) == 2)
    return {
        "simulated": simulated,
        "jobs": runs,
        "ran_together": overlap,
        "distinct_devices": distinct,
        "pass": bool(overlap and distinct),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (a dry run of the same code)")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (the tests' dry run)")
    ap.add_argument("--out", default="results/gpu_check.json", help="the JSON file to write")
    ap.add_argument("--weights", default="random:0", help="model weights (default random:0: same cost as pretrained)")
    for key, value in FULL.items():
        if isinstance(value, int):
            ap.add_argument("--" + key.replace("_", "-"), type=int, help=f"default {value} (--tiny: {TINY[key]})")
    ap.add_argument("--workers", type=int, help="dataset pass decoding workers (default: min(8, CPUs); --tiny: 0)")
    args = ap.parse_args(argv)
    if args.device not in ("cuda", "cpu"):
        return _refuse(f"--device {args.device} unknown. Fix: use cuda or cpu")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        return _refuse(
            "no CUDA device is usable here. Fix: run on a GPU machine, or use --device cpu --tiny for the dry run"
        )
    sizes = {**FULL, **(TINY if args.tiny else {})}
    given = {k: v for k, v in vars(args).items() if v is not None}
    sizes.update({k: v for k, v in given.items() if k in FULL or k == "workers"})
    check = Check(args, sizes)
    report = _environment(check)
    sections = [
        ("agreement", agreement),
        ("throughput", throughput),
        ("options", options),
        ("repeat", repeat),
        ("dataset", dataset_pass),
        ("lesions", lesions),
        ("dictionary", dictionary_training),
        ("gpus", several_gpus),
    ]
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, run in sections:
            t0 = time.perf_counter()
            report[name] = run(check)
            report[name + "_seconds"] = time.perf_counter() - t0
            print(f"[{name}: {report[name + '_seconds']:.1f} s]", file=sys.stderr, flush=True)
    report["nondeterministic_operations"] = sorted(
        {str(w.message).splitlines()[0] for w in caught if "deterministic" in str(w.message)}
    )
    report["seconds"] = time.perf_counter() - start
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print_table(report)
    print(f"\nwrote {args.out}")
    return 0


def _refuse(message: str) -> int:
    print(f"resstream: {message}", file=sys.stderr)
    return 2


def _environment(check: Check) -> dict:
    torch = check.torch
    name = torch.cuda.get_device_name(check.device) if check.device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": name,
        "device_setting": check.args.device,
        "tiny": check.args.tiny,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "weights": check.identity.label,
        "sizes": check.sizes,
    }


def print_table(r: dict) -> None:
    print(
        f"resstream GPU check, {r['date']}, {r['device']}, torch {r['torch']} (CUDA {r['cuda']}), weights {r['weights']}"
        + (" [tiny dry run]" if r["tiny"] else "")
    )
    a = r["agreement"]
    print(
        f"\nAgreement with the CPU (final centre activation within {a['tolerance']:.0%}, same statuses): "
        f"{'PASS' if a['pass'] else 'FAIL'}"
    )
    for g, row in a["groups"].items():
        print(
            f"  {g:7s} {row['layer']:14s} channels {row['channels']}  {row['steps']} steps  max rel. diff "
            f"{row['max_relative_difference']:.3f}  statuses {row['status_device']} vs {row['status_cpu']}"
        )
    t = r["throughput"]
    print(f"\nFV throughput ({'; '.join(f'{g} {n} units' for g, n in t['study_units'].items())} in the study):")
    print(
        f"  {'group':7s} {'layer':14s} {'px':>4s} {'unit-steps/s':>13s} {'lucent b1':>10s} {'ratio':>7s} {'peak MiB':>9s} {'TFLOP/s':>8s}"
    )
    for g, row in t["groups"].items():
        peak = f"{row['peak_mib']:.0f}" if row["peak_mib"] is not None else "-"
        print(
            f"  {g:7s} {row['layer']:14s} {row['input_px']:4d} {row['unit_steps_per_s']:13.1f} "
            f"{row['lucent']['unit_steps_per_s']:10.2f} {row['ratio']:6.1f}x {peak:>9s} {row['tflop_per_s']:8.2f}"
        )
    print(
        f"  study (4,672 units x {t['study_steps']} steps): {t['projected_hours']:.2f} h here, lucent batch 1 "
        f"{t['lucent_projected_hours']:.1f} h: x{t['study_ratio']:.1f}"
    )
    for g, block in r["options"].items():
        print(f"\nSpeed options, {g} ({block['layer']}, {block['units']} units x {block['steps']} steps):")
        for name, row in block["options"].items():
            print(
                f"  {name:20s} {row['unit_steps_per_s']:10.1f} unit-steps/s  x{row['speedup']:5.2f}   final activation vs "
                f"default: median {row['median_relative_difference']:.3f}, max {row['max_relative_difference']:.3f}, "
                f"{row['status_changes']} status changes"
            )
    print(
        "\nRepeat (same chunk twice): "
        + ", ".join(
            f"{g} {'bit-identical' if row['bit_identical'] else 'differs by ' + format(row['max_abs_image_difference'], '.2g')}"
            for g, row in r["repeat"].items()
        )
    )
    print(
        "  operations without a deterministic CUDA kernel: "
        + ("; ".join(r["nondeterministic_operations"]) or "none reported")
    )
    d = r["dataset"]
    print(
        f"\nDataset pass: {d['images']} generated JPEGs, {d['workers']} decoding workers, batch {d['batch_size']}: "
        f"{d['img_per_s']:.1f} img/s -> 50,000 images in {d['projected_minutes_50000']:.1f} min"
    )
    les = r["lesions"]
    print(
        f"\nLesions (block {les['block']}, {les['conditions']} conditions, {les['images']} generated JPEGs, "
        f"{les['workers']} workers): author {les['author_img_per_s_per_condition']:.1f}, resstream "
        f"{les['img_per_s_per_condition']:.1f} images/s per condition: x{les['speedup']:.2f}, accuracies equal "
        f"{les['accuracies_equal']}; 50,000 images x 66 conditions: author {les['author_projected_hours_full']:.2f} h, "
        f"resstream {les['projected_hours_full']:.2f} h"
    )
    print_dictionary(r["dictionary"])
    gp = r["gpus"]
    if "skipped" in gp:
        print(f"\nSeveral GPUs: skipped ({gp['skipped']})")
    else:
        kind = "simulated with two pretended devices, FVs on the CPU" if gp["simulated"] else "two GPUs"
        print(
            f"\nSeveral GPUs ({kind}): jobs on slots {[j['slot'] for j in gp['jobs']]}, ran together {gp['ran_together']}, "
            f"distinct devices {gp['distinct_devices']}: {'PASS' if gp['pass'] else 'FAIL'}"
        )
    print(f"\ntotal {r['seconds']:.0f} s")


def print_dictionary(d: dict) -> None:
    print(
        f"\nDictionary training (crosscoder, batch {next(iter(d['groups'].values()))['batch_size']}): "
        + ", ".join(f"{row['block']} {row['tokens_per_s']:,.0f} tokens/s" for row in d["groups"].values())
        + f" -> {len(d['study_blocks'])} blocks x {d['tokens_per_block']:,} tokens in {d['projected_hours']:.2f} h"
    )


if __name__ == "__main__":
    sys.exit(main())
