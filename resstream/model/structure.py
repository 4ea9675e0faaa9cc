"""A torchvision architecture's block table and feature-map sizes, read from the model built on the
``meta`` device (no weights, no memory), so that planning a study is instant.
"""

from __future__ import annotations

import contextlib
import functools

from resstream.model import blocks as blk
from resstream.model.families import check_arch


@contextlib.contextmanager
def meta_device():
    """Build models on the meta device.  RegNet computes its stage widths with ``.tolist()`` on a
    tensor while building (``BlockParams.from_init_params``), which the meta device cannot do: that
    one computation runs on the CPU."""
    import torch
    from torchvision.models import regnet

    original = regnet.BlockParams.from_init_params

    def on_cpu(*args, **kwargs):
        with torch.device("cpu"):
            return original(*args, **kwargs)

    regnet.BlockParams.from_init_params = on_cpu
    try:
        with torch.device("meta"):
            yield
    finally:
        regnet.BlockParams.from_init_params = original


def build_on_meta(arch: str):
    """``torchvision.models.<arch>(weights=None)`` on the meta device, in eval mode."""
    import torchvision

    with meta_device():
        return getattr(torchvision.models, arch)(weights=None).eval()


@functools.lru_cache(maxsize=8)
def structure(arch: str) -> tuple[blk.BlockInfo, ...]:
    """Block table of an architecture, built on the meta device (no weights, instant)."""
    check_arch(arch)
    return tuple(blk.model_blocks(build_on_meta(arch)))


@functools.lru_cache(maxsize=8)
def map_sizes(arch: str, input_size: int = 224) -> dict[str, tuple[int, int]]:
    """Spatial size of every block's output (by block name) and of every block input that no block
    produces (by module path: the stem's ``maxpool``, ConvNeXt's ``features.2``) at an input size."""
    import torch

    model = build_on_meta(arch)
    sizes: dict[str, tuple[int, int]] = {}

    def record(key):
        return lambda m, a, o: sizes.__setitem__(key, tuple(o.shape[-2:]))

    handles = []
    blocks = structure(arch)  # the same module paths, already listed
    block_modules = {info.module for info in blocks}
    for info in blocks:
        module = model.get_submodule(info.module)
        handles.append(module.register_forward_hook(record(info.name)))
        if info.input_from not in block_modules:
            handles.append(module.register_forward_pre_hook(
                lambda m, a, key=info.input_from: sizes.__setitem__(key, tuple(a[0].shape[-2:]))))
    with torch.no_grad():
        model(torch.empty(1, 3, input_size, input_size, device="meta"))
    for h in handles:
        h.remove()
    return sizes

