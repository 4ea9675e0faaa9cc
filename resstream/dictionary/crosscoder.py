"""A TopK sparse crosscoder for one residual block: one encoder reads a token (the block's tensors at
one spatial position, by default I and B concatenated), keeps the k largest of its ReLU'd latents, and
one decoder per target writes the block's I, B and O from those k latents.

Why a module of our own: Overcomplete's ``TopKSAE`` has one dictionary that reconstructs its own input,
and its auxiliary loss takes the top half of all pre-codes; a crosscoder needs an encoder on I⊕B with
separate decoders into I, B and O, and the dead-latent auxiliary loss of Gao et al. (2024) (aux-k over
latents that have not fired for a number of tokens).

Per-vector input normalisation: every token is divided by ``s = ||input|| / sqrt(d_in)`` before the
encoder, the targets by the same ``s``; reconstructions are multiplied back by ``s``.  Images (and
blocks) differ a lot in activation scale; this way a feature codes a direction, not a brightness.
The decoder rows are kept at unit norm jointly over I, B and O (:meth:`TopKCrosscoder.normalise_decoder`),
so the split of a feature's norm between its I and B decoders is its mix ratio, and its magnitude
lives in its activation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

EPS = 1e-8


def topk_relu(pre: torch.Tensor, k: int) -> torch.Tensor:
    """``[N, L] -> [N, L]``: the k largest of ``relu(pre)`` per row kept, every other latent 0."""
    top = torch.topk(torch.relu(pre), k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, top.indices, top.values)


class TopKCrosscoder(nn.Module):
    """``inputs``: the tensors the encoder reads, in order (e.g. ``["I", "B"]``); ``dims``: the channel
    count of every tensor named in ``inputs`` or ``targets``; ``targets``: the tensors the decoders write."""

    def __init__(
        self,
        inputs: list[str],
        targets: list[str],
        dims: dict[str, int],
        n_latents: int,
        k: int,
        aux_k: int,
        dead_tokens: int,
        seed: int = 0,
    ):
        super().__init__()
        self.inputs, self.targets, self.dims = list(inputs), list(targets), dict(dims)
        self.n_latents, self.k, self.aux_k, self.dead_tokens = n_latents, k, aux_k, dead_tokens
        g = torch.Generator().manual_seed(seed)
        self.W_dec = nn.ParameterDict({t: nn.Parameter(torch.randn(n_latents, dims[t], generator=g)) for t in targets})
        self.b_dec = nn.ParameterDict({t: nn.Parameter(torch.zeros(dims[t])) for t in targets})
        self.normalise_decoder()
        # the encoder starts as the decoder's transpose on the parts it reads (Gao et al.), a random
        # matrix for an input no decoder writes
        parts = [
            self.W_dec[t].detach().T
            if t in self.W_dec
            else torch.randn(dims[t], n_latents, generator=g) / math.sqrt(dims[t])
            for t in inputs
        ]
        self.W_enc = nn.Parameter(torch.cat(parts, dim=0).clone())
        self.b_enc = nn.Parameter(torch.zeros(n_latents))
        # tokens seen since each latent last fired (training state, saved with the weights)
        self.register_buffer("tokens_since_fired", torch.zeros(n_latents, dtype=torch.long))

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        """Every latent's decoder rows, over all targets together, to unit norm."""
        norm = torch.sqrt(sum(w.square().sum(1) for w in self.W_dec.values())).clamp_min(EPS)
        for w in self.W_dec.values():
            w.div_(norm[:, None])

    def scale(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[N, 1]``: each token's normalisation ``||input|| / sqrt(d_in)``."""
        x = torch.cat([tokens[t] for t in self.inputs], dim=1)
        return (x.norm(dim=1, keepdim=True) / math.sqrt(self.d_in)).clamp_min(EPS)

    def pre_activations(self, tokens: dict[str, torch.Tensor], scale: torch.Tensor) -> torch.Tensor:
        x = torch.cat([tokens[t] for t in self.inputs], dim=1) / scale
        return x @ self.W_enc + self.b_enc

    def encode(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[N, L]``: the latents (features' activations) of a batch of tokens."""
        return topk_relu(self.pre_activations(tokens, self.scale(tokens)), self.k)

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised-space reconstructions ``{target: [N, C]}`` of latents ``z``."""
        return {t: z @ self.W_dec[t] + self.b_dec[t] for t in self.targets}

    def reconstruct(self, tokens: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``({target: reconstruction in the tokens' own scale}, latents)``."""
        s = self.scale(tokens)
        z = topk_relu(self.pre_activations(tokens, s), self.k)
        return {t: r * s for t, r in self.decode(z).items()}, z

    def loss(self, tokens: dict[str, torch.Tensor], aux_coef: float) -> tuple[torch.Tensor, dict]:
        """The training loss on a batch: the normalised-space squared error summed over targets, plus
        ``aux_coef`` times the dead-latent auxiliary loss (:meth:`aux_loss`); updates the dead counters."""
        s = self.scale(tokens)
        pre = self.pre_activations(tokens, s)
        z = topk_relu(pre, self.k)
        recon = self.decode(z)
        residual = {t: tokens[t] / s - recon[t] for t in self.targets}
        mse = sum(r.square().mean() for r in residual.values())
        dead = self.dead_latents()
        aux = self.aux_loss(pre, residual, dead)
        self.count_firing(z)
        return mse + aux_coef * aux, {"mse": float(mse.detach()), "aux": float(aux.detach()), "dead": int(dead.sum())}

    def dead_latents(self) -> torch.Tensor:
        """``[L]`` bool: latents that have not fired for more than ``dead_tokens`` tokens."""
        return self.tokens_since_fired > self.dead_tokens

    def aux_loss(self, pre: torch.Tensor, residual: dict[str, torch.Tensor], dead: torch.Tensor) -> torch.Tensor:
        """Gao et al.'s aux-k: the ``aux_k`` largest pre-activations among the dead latents, decoded
        without bias, reconstruct the main reconstruction's residual; the squared error summed over
        targets (0 when no latent is dead).  It gives dead latents a gradient towards what is missed."""
        n_dead = int(dead.sum())
        if n_dead == 0:
            return pre.new_zeros(())
        masked = pre.masked_fill(~dead, float("-inf"))
        z_aux = topk_relu(torch.nan_to_num(masked, neginf=-1.0), min(self.aux_k, n_dead))
        return sum((residual[t].detach() - z_aux @ self.W_dec[t]).square().mean() for t in self.targets)

    @torch.no_grad()
    def count_firing(self, z: torch.Tensor) -> None:
        fired = (z > 0).any(dim=0)
        self.tokens_since_fired += z.shape[0]
        self.tokens_since_fired[fired] = 0
