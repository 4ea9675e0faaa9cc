"""Training a crosscoder on a stream of tokens, resumable and seeded.

The stream comes in *refills*: refill ``r`` is one chunk of tokens from a token source
(:mod:`resstream.dictionary.tokens`: a few images' sampled positions, or synthetic tokens), shuffled
with a generator seeded by ``(seed, r)`` and consumed in minibatches.  Only one refill is in memory at a
time, never every position of every image.  A checkpoint is written after every ``checkpoint_every``
refills (model, optimiser, dead-latent counters and the refill reached), so a job killed mid-run and
started again computes exactly the same dictionary as one that was never stopped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Protocol

import torch
from safetensors.torch import load_file, save_file

from resstream.dictionary.crosscoder import TopKCrosscoder

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIX = ".checkpoint.pt"


class TokenSource(Protocol):
    def chunk(self, index: int) -> dict[str, torch.Tensor]:
        """Chunk number ``index`` of the stream: ``{tensor name: [N, C]}``, the same every call."""


def new_crosscoder(cfg: dict) -> TopKCrosscoder:
    """The untrained crosscoder that a training config describes."""
    return TopKCrosscoder(
        cfg["inputs"],
        cfg["targets"],
        cfg["dims"],
        cfg["n_latents"],
        cfg["k"],
        cfg["aux_k"],
        cfg["dead_tokens"],
        seed=cfg["seed"],
    )


def _shuffled(tokens: dict[str, torch.Tensor], seed: int, refill: int) -> dict[str, torch.Tensor]:
    n = next(iter(tokens.values())).shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + refill))
    return {t: v[order] for t, v in tokens.items()}


def train_crosscoder(
    cfg: dict,
    source: TokenSource,
    checkpoint: str | None = None,
    *,
    device: str = "cpu",
    on_refill: Callable[[int], None] | None = None,
) -> TopKCrosscoder:
    """Train the crosscoder ``cfg`` describes (:func:`new_crosscoder`; plus ``lr``, ``aux_coef``,
    ``batch_size``, ``refills``, ``checkpoint_every``) on ``source``; resumes from ``checkpoint`` when
    it holds the same config.  ``on_refill(r)`` is called after refill ``r`` (the tests stop a run there)."""
    torch.manual_seed(cfg["seed"])
    model = new_crosscoder(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    start = _resume(checkpoint, cfg, model, opt)
    t0, done = time.perf_counter(), 0
    for refill in range(start, cfg["refills"]):
        tokens = _shuffled(source.chunk(refill), cfg["seed"], refill)
        stats = _train_refill(model, opt, tokens, cfg, device)
        done += 1
        if checkpoint and ((refill + 1) % cfg["checkpoint_every"] == 0 or refill + 1 == cfg["refills"]):
            _save_checkpoint(checkpoint, cfg, model, opt, refill + 1)
        _log_progress(refill + 1, cfg["refills"], done, time.perf_counter() - t0, stats)
        if on_refill is not None:
            on_refill(refill)
    return model


def _train_refill(model: TopKCrosscoder, opt, tokens: dict[str, torch.Tensor], cfg: dict, device: str) -> dict:
    n = next(iter(tokens.values())).shape[0]
    stats = {}
    for lo in range(0, n - cfg["batch_size"] + 1, cfg["batch_size"]):
        batch = {t: v[lo : lo + cfg["batch_size"]].to(device) for t, v in tokens.items()}
        loss, stats = model.loss(batch, cfg["aux_coef"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.normalise_decoder()
    return stats


def _log_progress(refill: int, refills: int, done: int, elapsed: float, stats: dict) -> None:
    eta = (refills - refill) * elapsed / done
    log.info(
        "refill %d/%d: mse %.4f, aux %.4f, %d dead latents, ETA %d:%02d:%02d",
        refill,
        refills,
        stats.get("mse", math.nan),
        stats.get("aux", math.nan),
        stats.get("dead", 0),
        eta // 3600,
        eta % 3600 // 60,
        eta % 60,
    )


def _save_checkpoint(path: str, cfg: dict, model: TopKCrosscoder, opt, refills_done: int) -> None:
    """Written to a side file and renamed, so a kill mid-write leaves the previous checkpoint whole."""
    tmp = path + ".tmp"
    torch.save(
        {"config": cfg, "refills_done": refills_done, "model": model.state_dict(), "optimiser": opt.state_dict()}, tmp
    )
    os.replace(tmp, path)


def _resume(path: str | None, cfg: dict, model: TopKCrosscoder, opt) -> int:
    """The first refill to compute: 0, or where a checkpoint of the same config stopped."""
    if not path or not os.path.exists(path):
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state["config"] != cfg:
        log.warning("not resuming %s: it was trained with another config; starting over", path)
        return 0
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimiser"])
    log.info("resuming %s after %d/%d refills", path, state["refills_done"], cfg["refills"])
    return state["refills_done"]


def save_dictionary(path: str, model: TopKCrosscoder, cfg: dict, weights_identity: dict) -> None:
    """The trained dictionary as safetensors; its config and the network weights' identity in the
    file's metadata (strings, as safetensors stores them)."""
    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    tmp = path + ".partial"
    save_file(
        tensors,
        tmp,
        metadata={"config": json.dumps(cfg, sort_keys=True), "weights": json.dumps(weights_identity, sort_keys=True)},
    )
    os.replace(tmp, path)


def load_dictionary(path: str) -> tuple[TopKCrosscoder, dict, dict]:
    """``(crosscoder, config, weights identity)`` from a file :func:`save_dictionary` wrote."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    cfg = json.loads(meta["config"])
    model = new_crosscoder(cfg)
    model.load_state_dict(load_file(path))
    return model, cfg, json.loads(meta["weights"])
