"""A torchvision architecture's block table and feature-map sizes, read from the model built on the
``meta`` device (no weights, no memory), so that planning a study is instant.
"""

from __future__ import annotations

import functools

from resstream.model import blocks as blk


@functools.lru_cache(maxsize=8)
def structure(arch: str) -> tuple[blk.BlockInfo, ...]:
    """Block table of an architecture, built on the meta device (no weights, instant)."""
    import torch
    import torchvision

    with torch.device("meta"):
        model = getattr(torchvision.models, arch)(weights=None)
    return tuple(blk.model_blocks(model))


@functools.lru_cache(maxsize=8)
def map_sizes(arch: str, input_size: int = 224) -> dict[str, tuple[int, int]]:
    """Spatial size of every block's output (and of the stem's maxpool) at a given input size."""
    import torch
    import torchvision

    with torch.device("meta"):
        model = getattr(torchvision.models, arch)(weights=None).eval()
    sizes: dict[str, tuple[int, int]] = {}
    handles = [model.maxpool.register_forward_hook(lambda m, a, o: sizes.__setitem__("maxpool", tuple(o.shape[-2:])))]
    for info in blk.model_blocks(model):
        mod = model.get_submodule(info.module)
        handles.append(mod.register_forward_hook(lambda m, a, o, n=info.name: sizes.__setitem__(n, tuple(o.shape[-2:]))))
    with torch.no_grad():
        model(torch.empty(1, 3, input_size, input_size, device="meta"))
    for h in handles:
        h.remove()
    return sizes
