"""FLOPs of one FV step per layer, and a FLOP-based estimate of the FV stage's time on one GPU.

An ESTIMATE, not a measurement: ``bench/gpu_check.py`` measures.  Per unit and step, resstream's
step is the forward truncated after the target block, on the receptive-field crop where the engine
crops a 224 px input, plus the backward to the input only (weights frozen); lucent's (the
author's way) is the full network forward plus the backward with weight gradients.  Counted with
``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matmuls; the transforms, the fft and
Adam are elementwise and left out) on the ``meta`` device, for every layer of the default study
(4,672 units, ``fv.steps`` each).  Jitter < 4 layers see inputs of 224-236 px; counted at 224.

GPU time = FLOPs / (peak × utilisation), for the peaks in ``PEAKS_TFLOPS`` (NVIDIA's H100 SXM5 /
H200 SXM figures; the H200 has the H100's compute) and an assumed utilisation:

    .venv/bin/python bench/fv_flops.py [--utilisation 0.3]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from resstream.model.blocks import parse_layer  # noqa: E402
from resstream.model.receptive_field import CropPlanner  # noqa: E402
from resstream.model.taps import block_taps  # noqa: E402
from resstream.model.walk import model_blocks  # noqa: E402
from resstream.workflow.config import validate_config  # noqa: E402
from resstream.workflow.plan import StudyPlan  # noqa: E402

# Dense peaks, TFLOP/s, NVIDIA H100 SXM5 datasheet and Hopper architecture whitepaper (the H200 SXM
# shares the H100's GH100 compute; NVIDIA quotes the Tensor Core figures "with sparsity", i.e. twice
# these).  fp32 runs on the CUDA cores, TF32 and bf16 on the Tensor Cores.
PEAKS_TFLOPS = {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4}


def step_flops(model, blocks, layer: str, hook: str = "intended", rf_crop: bool = True) -> tuple[int, int]:
    """(FLOPs of one unit's resstream step, input side it runs at) for ``layer`` at 224 px."""
    ref = parse_layer(blocks, layer)
    plan = CropPlanner(model, blocks, ref, hook).plan(224) if rf_crop else None
    side = plan.size if plan is not None else 224
    meta = copy.deepcopy(model).to("meta")
    x = torch.zeros(1, 3, side, side, device="meta", requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        act = block_taps(meta, x, [ref], hook, blocks)[ref]
        act[0, 0, act.shape[-2] // 2, act.shape[-1] // 2].backward()
    return counter.get_total_flops(), side


def lucent_step_flops(model) -> int:
    """FLOPs of one lucent ``render_vis`` step at batch 1: full forward, backward with weight grads."""
    meta = copy.deepcopy(model).to("meta")
    for p in meta.parameters():
        p.requires_grad_(True)
    x = torch.zeros(1, 3, 224, 224, device="meta", requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        meta(x)[0, 0].backward()
    return counter.get_total_flops()


def study_rows(model, config: dict | None = None) -> list[dict]:
    """One row per FV layer of the study: units, input side, FLOPs per unit-step."""
    study = StudyPlan(validate_config(config or {}))
    blocks = model_blocks(model)
    rows = []
    for layer in study.layers:
        flops, side = step_flops(model, blocks, layer, study.config["fv"]["hook"], study.config["fv"]["rf_crop"])
        units = sum(len(c.channels) for c in study.chunks(layer))
        rows.append(
            {
                "layer": layer,
                "group": layer.split(".")[0],
                "units": units,
                "side": side,
                "gflop_per_unit_step": flops / 1e9,
                "steps": study.fv_settings(layer).steps,
            }
        )
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utilisation", type=float, default=0.3, help="assumed fraction of the peak reached (default 0.3)")
    args = ap.parse_args()
    from resstream.model.weights import load_model

    model, _ = load_model("resnet18", "random:0")
    rows = study_rows(model)
    lucent = lucent_step_flops(model) / 1e9
    print(f"{'layer':24s} {'units':>6s} {'input':>6s} {'GFLOP/unit-step':>16s} {'study PFLOP':>12s}")
    total = lucent_total = 0.0
    by_group: dict[str, float] = {}
    for r in rows:
        pflop = r["units"] * r["steps"] * r["gflop_per_unit_step"] / 1e6
        total += pflop
        lucent_total += r["units"] * r["steps"] * lucent / 1e6
        by_group[r["group"]] = by_group.get(r["group"], 0.0) + pflop
        print(f"{r['layer']:24s} {r['units']:6d} {r['side']:5d}px {r['gflop_per_unit_step']:16.2f} {pflop:12.2f}")
    units = sum(r["units"] for r in rows)
    print(
        f"{'study':24s} {units:6d} {'':6s} {total * 1e6 / (units * rows[0]['steps']):16.2f} {total:12.2f}   "
        f"(by group: {', '.join(f'{g} {v:.1f}' for g, v in by_group.items())})"
    )
    print(
        f"lucent (author's way): {lucent:.2f} GFLOP per unit-step, {lucent_total:.1f} PFLOP for the study "
        f"(x{lucent_total / total:.1f} resstream's)"
    )
    print(f"\nestimated GPU time for the study's FLOPs at {args.utilisation:.0%} of the dense peak (H100/H200 SXM):")
    for name, peak in PEAKS_TFLOPS.items():
        seconds = total * 1e15 / (peak * 1e12 * args.utilisation)
        print(f"  {name:5s} peak {peak:6.1f} TFLOP/s: {seconds / 60:6.1f} min  ({seconds / 3600:.2f} GPU-hours)")


if __name__ == "__main__":
    main()
