"""Reading a trained crosscoder per feature: reconstruction quality on held-out tokens (FVE of I, B and
O separately, L0, dead and dense features), the feature mix ratio from its decoder norms, its top
exemplar images, and how many features it takes to explain a channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from resstream.analysis.metrics import MixRatio, mix_group, mix_ratio
from resstream.dictionary.crosscoder import TopKCrosscoder


@dataclass
class Quality:
    fve: dict[str, float]  # fraction of variance explained, per target
    l0: float  # mean number of active latents per token
    firing: np.ndarray  # [L] share of tokens on which each latent fired
    mean_activation: np.ndarray  # [L] each latent's mean activation over all tokens
    tokens: int
    dead_share: float  # latents that never fired on the held-out tokens
    dense_share: float  # latents that fired on more than the dense threshold of tokens


class _Moments:
    """Running sums for the FVE: residual energy and the target's own variance, in float64."""

    def __init__(self):
        self.n, self.s, self.s2, self.res2 = 0, 0.0, 0.0, 0.0

    def add(self, target: torch.Tensor, recon: torch.Tensor) -> None:
        t = target.double()
        self.n += t.shape[0]
        self.s = self.s + t.sum(0)
        self.s2 = self.s2 + t.square().sum(0)
        self.res2 += float((t - recon.double()).square().sum())

    def fve(self) -> float:
        variance = float((self.s2 - self.s.square() / self.n).sum())
        return 1.0 - self.res2 / variance if variance > 0 else float("nan")


@torch.no_grad()
def quality(model: TopKCrosscoder, chunks, dense_threshold: float) -> Quality:
    """The crosscoder's quality on ``chunks`` (an iterable of token dicts, held-out data)."""
    moments = {t: _Moments() for t in model.targets}
    fired = torch.zeros(model.n_latents, dtype=torch.float64)
    total = torch.zeros(model.n_latents, dtype=torch.float64)
    active, n = 0.0, 0
    for tokens in chunks:
        recon, z = model.reconstruct(tokens)
        for t in model.targets:
            moments[t].add(tokens[t], recon[t])
        on = z > 0
        fired += on.sum(0).double()
        total += z.sum(0).double()
        active += float(on.sum())
        n += z.shape[0]
    firing = (fired / max(n, 1)).numpy()
    return Quality(
        {t: m.fve() for t, m in moments.items()},
        active / max(n, 1),
        firing,
        (total / max(n, 1)).numpy(),
        n,
        float(np.mean(firing == 0)),
        float(np.mean(firing > dense_threshold)),
    )


def decoder_norms(model: TopKCrosscoder) -> dict[str, np.ndarray]:
    """``{target: [L]}``: the norm of every feature's decoder row into each target."""
    return {t: w.detach().norm(dim=1).double().numpy() for t, w in model.W_dec.items()}


def feature_mix_ratio(model: TopKCrosscoder, i_name: str = "I", b_name: str = "B") -> MixRatio:
    """A feature's M: the norm of its decoder into I over the norm of its decoder into B, read like the
    channel M (I dominating: the feature rides the skip; B dominating: the block writes it, an
    overwrite); a feature with no B decoder is a skip (10), one with no I decoder an overwrite (0).
    ``i_name``, ``b_name``: the block's I and B among the crosscoder's targets."""
    norms = decoder_norms(model)
    return mix_ratio(norms[i_name], norms[b_name])


def feature_groups(model: TopKCrosscoder, mix_factor: float) -> np.ndarray:
    """Every feature's skip / mix / overwrite group, with the channels' tolerance ``mix_factor``."""
    return mix_group(feature_mix_ratio(model).raw, mix_factor)


def features_per_channel(model: TopKCrosscoder, mean_activation: np.ndarray, target: str, share: float) -> np.ndarray:
    """``[C]``: for every channel of ``target``, the fewest features whose mean contributions
    (mean activation x |decoder weight into the channel|) reach ``share`` of the channel's total: few
    means the channel is one feature, many means it is a mixture."""
    contrib = np.abs(model.W_dec[target].detach().double().numpy()) * mean_activation[:, None]  # [L, C]
    ordered = -np.sort(-contrib, axis=0)
    cumulative = np.cumsum(ordered, axis=0)
    total = cumulative[-1]
    needed = (cumulative < share * total[None, :]).sum(0) + 1
    return np.where(total > 0, needed, 0)


class TopImages:
    """Each feature's ``n`` images of highest activation (over all positions of the image), with the
    position where it peaks."""

    def __init__(self, n_latents: int, n: int):
        self.n = n
        self.value = np.full((n_latents, 0), -np.inf)
        self.image = np.zeros((n_latents, 0), dtype=np.int64)
        self.cell = np.zeros((n_latents, 0), dtype=np.int64)

    def add(self, acts: torch.Tensor, images: list[int]) -> None:
        """``acts``: ``[N, L, H*W]`` feature activations of the images ``images`` at every cell."""
        peak, where = acts.max(dim=2)  # [N, L]
        value = np.concatenate([self.value, peak.T.double().numpy()], axis=1)
        image = np.concatenate([self.image, np.broadcast_to(np.asarray(images)[None, :], peak.T.shape)], axis=1)
        cell = np.concatenate([self.cell, where.T.numpy()], axis=1)
        keep = np.argsort(-value, axis=1, kind="stable")[:, : self.n]
        self.value, self.image, self.cell = (np.take_along_axis(a, keep, 1) for a in (value, image, cell))


@torch.no_grad()
def map_activations(model: TopKCrosscoder, maps: dict[str, torch.Tensor]) -> torch.Tensor:
    """``{role: [N, C, H, W]}`` -> ``[N, L, H*W]``: every feature's activation at every cell."""
    n, _, h, w = next(iter(maps.values())).shape
    tokens = {r: m.flatten(2).permute(0, 2, 1).reshape(n * h * w, -1) for r, m in maps.items()}
    return model.encode(tokens).reshape(n, h * w, -1).permute(0, 2, 1)
