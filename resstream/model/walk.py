"""The residual blocks of a built torchvision network, found by walking its modules: the block
table (:class:`~resstream.model.blocks.BlockInfo`) that :mod:`resstream.model.structure` records
per architecture and that jobs read from the network they load.
"""

from __future__ import annotations

import torch

from resstream.model.adapters import adapter_of, layer_stride, main_path
from resstream.model.blocks import RESNET_NAME_RE, BlockError, BlockInfo


def _producer(model: torch.nn.Module, path: str) -> str:
    """The module whose output is the input of the module at ``path``: the previous sibling (its
    last block, if it holds blocks), else the producer of the parent."""
    while path:
        parent_path, _, name = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        names = [n for n, _ in parent.named_children()]
        i = names.index(name)
        if i > 0:
            path = f"{parent_path}.{names[i - 1]}" if parent_path else names[i - 1]
            module = model.get_submodule(path)
            while adapter_of(module) is None and any(adapter_of(m) for m in module.modules()):
                last = list(module.named_children())[-1][0]
                path, module = f"{path}.{last}", getattr(module, last)
            return path
        path = parent_path
    return "input"


def _found_blocks(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module, int]]:
    """``(path, module, input stride)`` of every block, in forward order."""
    found, stride = [], 1
    for path, module in main_path(model):
        if adapter_of(module) is not None:
            found.append((path, module, stride))
        stride *= layer_stride(module)
    return found


def _stage_keys(model: torch.nn.Module, found) -> list[str]:
    """A stage per block: its parent module when that holds only blocks (layer2, features.3,
    trunk_output.block2), else (MobileNets' flat ``features``) its output-stride group."""
    keys = []
    for path, module, in_stride in found:
        parent_path = path.rpartition(".")[0]
        parent = model.get_submodule(parent_path) if parent_path else model
        if all(adapter_of(m) is not None for m in parent.children()):
            keys.append(parent_path)
        else:
            out_stride = in_stride * max((layer_stride(m) for m in module.modules()), default=1)
            keys.append(f"stride {out_stride}")
    return keys


def _after_sum(adapter, module) -> str | None:
    """The nonlinearity after the block's sum: fixed per block class, or (timm's byobnet and CSPNet,
    where a block may end linear) read from the block."""
    if not adapter.has_sum(module):
        return None
    return adapter.after_sum(module) if callable(adapter.after_sum) else adapter.after_sum


def model_blocks(model: torch.nn.Module) -> list[BlockInfo]:
    """Every block (with or without a residual sum) of the model in forward order."""
    found = _found_blocks(model)
    if not found:
        raise BlockError(f"{type(model).__name__} has no residual blocks of a supported family")
    keys = _stage_keys(model, found)
    stages = list(dict.fromkeys(keys))
    blocks: list[BlockInfo] = []
    for (path, module, in_stride), key in zip(found, keys):
        adapter = adapter_of(module)
        stage = stages.index(key) + 1
        resnet_name = RESNET_NAME_RE.match(path)
        first_conv = next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d))
        info = BlockInfo(
            name=f"{resnet_name.group(1)}.{resnet_name.group(2)}" if resnet_name else path,
            module=path,
            index=len(blocks),
            channels=adapter.channels(module),
            in_channels=first_conv.in_channels,
            prev=blocks[-1].name if blocks else None,
            input_from=_producer(model, path),
            branch_out=adapter.branch_out(module),
            skip_module=adapter.skip_module(module),
            after_sum=_after_sum(adapter, module),
            block_class=type(module).__name__,
            has_sum=adapter.has_sum(module),
            stage=stage,
            in_stride=in_stride,
        )
        blocks.append(info)
    return blocks
