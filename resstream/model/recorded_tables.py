"""What the recorded block tables (``arch_tables.json`` for torchvision, ``timm_tables.json`` for
timm) share: the input size and :class:`BlockInfo` fields they are recorded with, the torchvision
release they hold for, feature-map sizes measured on a built network, and how a tables file is written.
"""

from __future__ import annotations

import json
from dataclasses import fields
from importlib.metadata import version
from pathlib import Path

from resstream.model.blocks import BlockInfo

RECORDED_INPUT_SIZE = 224
BLOCK_FIELDS = [f.name for f in fields(BlockInfo)]


def torchvision_release() -> str:
    """The installed torchvision's version without its local part: a CUDA build (``0.29.1+cu128``)
    builds the same networks as the CPU build it was recorded with."""
    return version("torchvision").split("+")[0]


def model_map_sizes(model, input_size: int = RECORDED_INPUT_SIZE) -> dict[str, tuple[int, int]]:
    """:func:`map_sizes` of a built (meta) network."""
    import torch

    from resstream.model.walk import model_blocks

    sizes: dict[str, tuple[int, int]] = {}

    def record(key):
        return lambda m, a, o: sizes.__setitem__(key, tuple(o.shape[-2:]))

    handles = []
    blocks = model_blocks(model)
    block_modules = {info.module for info in blocks}
    for info in blocks:
        module = model.get_submodule(info.module)
        handles.append(module.register_forward_hook(record(info.name)))
        if info.input_from not in block_modules:
            handles.append(
                module.register_forward_pre_hook(
                    lambda m, a, key=info.input_from: sizes.__setitem__(key, tuple(a[0].shape[-2:]))
                )
            )
    with torch.no_grad():
        model(torch.empty(1, 3, input_size, input_size, device="meta"))
    for h in handles:
        h.remove()
    return sizes


def write_recorded(path: Path, header: str, section: str, tables: dict[str, dict]) -> Path:
    """A tables file: ``{header, "section": {key: table, ...}}`` with one table per line (an upgrade
    shows as a readable diff); written atomically."""
    lines = [f'  "{key}": {json.dumps(table, separators=(",", ":"))}' for key, table in tables.items()]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("{" + header + f',\n "{section}": {{\n' + ",\n".join(lines) + "\n}}\n")
    tmp.replace(path)
    return path
