"""The dictionary stage's cost: crosscoder training tokens/s and image-token tokens/s measured here,
and a projection for resnet18 (every studied block, IMAGES x POSITIONS tokens each) on one GPU.

* training: the default crosscoder of each studied block (encoder on I+B, decoders into I, B, O,
  ``expansion`` x 2C latents) on synthetic tokens of the block's width, ``--steps`` Adam steps of
  ``--batch-size`` tokens;
* image tokens: the truncated forward that reads a block's I, B and O maps, ``--images`` random
  images at a time (224 x 224), ``--positions`` tokens sampled per image.
* projection: FLOPs per token (training: 6 x the dense encoder and decoder multiply-adds; images: the
  truncated forward's FLOPs, counted by torch) over an assumed sustained GPU rate (``--gpu-tflops``),
  and the dataset reading bound (the dataset pass's budget of 10 decoded images/s per 2 cores,
  scaled by ``--gpu-host-cores``): every block's job reads its images again.

    .venv/bin/python bench/bench_dictionary.py [--steps 20] [--batch-size 1024] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from resstream.base.job_resources import PASS_IMAGES_PER_SECOND  # noqa: E402
from resstream.base.schema import default  # noqa: E402
from resstream.dictionary.stage import ROLES  # noqa: E402
from resstream.dictionary.tokens import SyntheticTokens, sample_positions  # noqa: E402
from resstream.dictionary.train import new_crosscoder  # noqa: E402
from resstream.model.blocks import default_study_blocks, role_tap  # noqa: E402
from resstream.model.taps import block_taps  # noqa: E402
from resstream.model.walk import model_blocks  # noqa: E402
from resstream.model.weights import load_model  # noqa: E402


def block_config(channels: int, args) -> dict:
    cfg = {k: default(f"dictionary.{k}") for k in ("inputs", "k", "aux_k", "dead_tokens", "seed", "lr", "aux_coef")}
    cfg.update(
        targets=ROLES,
        dims={r: channels for r in ROLES},
        batch_size=args.batch_size,
        n_latents=default("dictionary.expansion") * 2 * channels,
    )
    return cfg


def training_rate(cfg: dict, steps: int, device: str = "cpu") -> float:
    """Tokens/s of Adam steps on synthetic tokens (the loss, backward, step, decoder renorm) on
    ``device`` (CUDA: timed between synchronisations)."""
    model = new_crosscoder(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    tokens = SyntheticTokens(64, cfg["dims"]["I"], 4, cfg["batch_size"], seed=0, names=ROLES).chunk(0)
    tokens = {name: t.to(device) for name, t in tokens.items()}
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for i in range(steps + 2):
        if i == 2:  # two warm-up steps
            sync()
            t0 = time.perf_counter()
        loss, _ = model.loss(tokens, cfg["aux_coef"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.normalise_decoder()
    sync()
    return steps * cfg["batch_size"] / (time.perf_counter() - t0)


def training_flops_per_token(cfg: dict) -> float:
    d_in = sum(cfg["dims"][t] for t in cfg["inputs"])
    d_out = sum(cfg["dims"][t] for t in cfg["targets"])
    return 6.0 * cfg["n_latents"] * (d_in + d_out)


def image_tokens(net, blocks, block: str, images: int, positions: int) -> tuple[float, float]:
    """``(tokens/s, forward FLOPs per image)`` of reading one block's I, B and O at sampled positions."""
    refs = list(dict.fromkeys(role_tap(blocks, block, r, "pre") for r in ROLES))
    x = torch.randn(images, 3, 224, 224)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        block_taps(net, x[:1], refs, blocks=blocks)
    t0 = time.perf_counter()
    with torch.inference_mode():
        maps = block_taps(net, x, refs, blocks=blocks)
    sample_positions({r.tensor: m for r, m in maps.items()}, positions, torch.Generator().manual_seed(0))
    return images * positions / (time.perf_counter() - t0), float(counter.get_total_flops())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--images", type=int, default=8, help="images per forward for the image-token rate")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--project-images", type=int, default=50_000)
    p.add_argument("--positions", type=int, default=16)
    p.add_argument("--gpu-tflops", type=float, default=20.0, help="assumed sustained fp32 TFLOP/s of the GPU")
    p.add_argument("--gpu-host-cores", type=int, default=16, help="CPU cores decoding images for the GPU job")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    net, _ = load_model("resnet18", "random:0", allow_download=False)
    net.eval()
    blocks = model_blocks(net)
    tokens = args.project_images * args.positions
    decode_rate = PASS_IMAGES_PER_SECOND * args.gpu_host_cores / 2
    total_gpu, total_read = 0.0, 0.0
    print(
        f"CPU, {args.threads} threads; training batch {args.batch_size}; projection: {args.project_images} images x "
        f"{args.positions} positions per block, {args.gpu_tflops} TFLOP/s sustained, {decode_rate:.0f} images/s decoded"
    )
    print("block  C  latents  train tok/s  image tok/s  GPU train+forward s  reading s")
    for block in default_study_blocks(blocks):
        channels = next(b.channels for b in blocks if b.name == block)
        cfg = block_config(channels, args)
        train = training_rate(cfg, args.steps)
        read, fwd_flops = image_tokens(net, blocks, block, args.images, args.positions)
        gpu_s = (tokens * training_flops_per_token(cfg) + args.project_images * fwd_flops) / (args.gpu_tflops * 1e12)
        read_s = args.project_images / decode_rate
        total_gpu, total_read = total_gpu + gpu_s, total_read + read_s
        print(f"{block:5} {channels:3} {cfg['n_latents']:7} {train:12.0f} {read:12.0f} {gpu_s:20.1f} {read_s:10.0f}")
    print(
        f"projection, all blocks on one GPU: compute {total_gpu / 60:.1f} min, image reading {total_read / 60:.1f} min "
        f"-> about {max(total_gpu, total_read) / 60:.0f} min (the larger bounds it)"
    )


if __name__ == "__main__":
    main()
