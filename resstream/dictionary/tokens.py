"""Token sources for crosscoder training: chunk ``r`` of a stream, the same on every call, so a
resumed run sees the same tokens.

:class:`ImageTokens` reads a block's I, B and O from images with the dataset pass's reader and taps,
at ``positions`` spatial positions per image drawn without replacement (seeded by the chunk);
:class:`SyntheticTokens` draws tokens from a known sparse dictionary (tests and benchmarks).
"""

from __future__ import annotations

import torch

from resstream.data.dataset import ImageFolderDataset
from resstream.model.blocks import role_tap
from resstream.model.taps import block_taps


def _generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + index + 1)


class SyntheticTokens:
    """Tokens ``x = codes @ atoms`` with ``active`` non-negative codes per token out of ``atoms``
    unit-norm atoms of ``dim`` channels; the same vector is served under every name in ``names``.
    With ``dims`` (``{name: channels}``) every name gets atoms of its own instead (the same codes):
    one atom is then the concatenation of its parts, unit-norm as a whole (``self.atoms``)."""

    def __init__(
        self,
        n_atoms: int,
        dim: int,
        active: int,
        chunk_tokens: int,
        seed: int,
        names=("I",),
        dims: dict[str, int] | None = None,
    ):
        g = _generator(seed, -1)
        widths = dims or {"": dim}
        atoms = torch.randn(n_atoms, sum(widths.values()), generator=g)
        self.atoms = atoms / atoms.norm(dim=1, keepdim=True)
        self.parts = dict(zip(widths, self.atoms.split(list(widths.values()), dim=1))) if dims else None
        self.names = tuple(dims) if dims else tuple(names)
        self.active, self.chunk_tokens, self.seed = active, chunk_tokens, seed

    def chunk(self, index: int) -> dict[str, torch.Tensor]:
        g = _generator(self.seed, index)
        n, n_atoms = self.chunk_tokens, self.atoms.shape[0]
        which = torch.rand(n, n_atoms, generator=g).argsort(dim=1)[:, : self.active]
        codes = torch.zeros(n, n_atoms).scatter(1, which, torch.rand(n, self.active, generator=g) + 0.5)
        if self.parts:
            return {name: codes @ atoms for name, atoms in self.parts.items()}
        x = codes @ self.atoms
        return {name: x for name in self.names}


def block_refs(blocks, block: str, roles: list[str], o_relu: str) -> dict:
    """``{role: TapRef}``: the tensors behind a block's ``roles`` (of I, B, O)."""
    return {role: role_tap(blocks, block, role, o_relu) for role in roles}


class ImageTokens:
    """The tensors ``refs`` (``{name: TapRef}``, maps of one grid: e.g. :func:`block_refs`) at sampled
    positions of ``images_per_chunk`` images per chunk, taken in a seeded order of ``dataset`` (an
    :class:`ImageFolderDataset`) and round again when the stream outlasts it, with fresh positions
    each round."""

    def __init__(
        self,
        net,
        blocks,
        refs: dict,
        dataset: ImageFolderDataset,
        positions: int,
        images_per_chunk: int,
        seed: int,
        device: torch.device,
    ):
        self.net, self.blocks, self.dataset, self.device = net, blocks, dataset, device
        self.refs = dict(refs)
        self.positions, self.images_per_chunk, self.seed = positions, images_per_chunk, seed
        self.order = torch.randperm(len(dataset), generator=_generator(seed, -1))

    def images_of(self, index: int) -> list[int]:
        n = len(self.order)
        return [int(self.order[(index * self.images_per_chunk + j) % n]) for j in range(self.images_per_chunk)]

    def chunk(self, index: int) -> dict[str, torch.Tensor]:
        items = [self.dataset[i] for i in self.images_of(index)]
        good = [x for x, _, ok in items if ok]
        maps = self.maps(torch.stack(good))
        return sample_positions(maps, self.positions, _generator(self.seed, index))

    def maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{role: [N, C, H, W]}`` of a batch of images, in one truncated forward."""
        with torch.inference_mode():
            taps = block_taps(self.net, x.to(self.device), list(dict.fromkeys(self.refs.values())), blocks=self.blocks)
        return {role: taps[ref].float().cpu() for role, ref in self.refs.items()}


def sample_positions(maps: dict[str, torch.Tensor], positions: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """``{role: [N * positions, C]}``: the same ``positions`` cells of every role's map per image,
    drawn without replacement (all cells when the map has fewer)."""
    first = next(iter(maps.values()))
    n, _, h, w = first.shape
    cells = torch.stack([torch.randperm(h * w, generator=g)[:positions] for _ in range(n)])  # [N, P]
    out = {}
    for role, m in maps.items():
        flat = m.flatten(2)  # [N, C, H*W]
        picked = flat.gather(2, cells[:, None, :].expand(-1, flat.shape[1], -1))  # [N, C, P]
        out[role] = picked.permute(0, 2, 1).reshape(-1, flat.shape[1])
    return out
