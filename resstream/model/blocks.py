"""Residual blocks of a torchvision ResNet, their studied layers and the names those layers go by.

A block is named like the paper, ``"2.1"`` = ``model.layer2[1]``.  For every studied block the
paper reads three tensors (spec §1):

* ``I`` the block's input as the residual stream carries it: the ``downsample`` output for a
  downsampling block, otherwise the previous block's output (pre- or post-ReLU, ``o_relu``);
* ``B`` the branch, the output of the block's last BatchNorm (``bn2``; ``bn3`` in Bottleneck);
* ``O`` the block's output, the sum before the ReLU (``o_relu: pre``) or after it (``post``).

Each tensor is a *layer* with a module-style name, used for files and for FV jobs:
``layer2.0.downsample.1``, ``layer2.0.bn2``, ``layer2.0.prerelu_out`` (pre-ReLU sum) and
``layer2.0`` (post-ReLU output).  A simple block's I is the previous block's O layer, so its FVs
are shared, exactly as in the paper's 4,672-unit study.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from resstream.errors import UserError

# Tap kinds: the tensors a block exposes.
X, D, B, O_PRE, O_POST = "X", "D", "B", "O_pre", "O_post"
TAP_KINDS = (X, D, B, O_PRE, O_POST)
ROLES = ("I", "B", "O")
O_RELU_CHOICES = ("pre", "post")  # study.o_relu: O (and a simple block's I) before or after the ReLU
BLOCK_RE = re.compile(r"^([1-9])\.(\d+)$")


class BlockError(UserError, ValueError):
    """An unknown block or layer name; the message lists the valid ones."""


@dataclass(frozen=True)
class BlockInfo:
    name: str  # "2.1"
    module: str  # "layer2.1"
    index: int  # position among all blocks of the model, 0-based
    downsample: bool
    channels: int  # output channels of the block (= channels of I, B and O)
    prev: str | None  # previous block's name; None for the first block
    branch_bn: str  # "bn2" (BasicBlock) or "bn3" (Bottleneck)
    block_type: str  # "BasicBlock" | "Bottleneck"

    @property
    def kind(self) -> str:
        return "downsample" if self.downsample else "simple"


@dataclass(frozen=True)
class TapRef:
    """One tensor of one block: ``TapRef("2.0", "D")``."""

    block: str
    kind: str

    def __post_init__(self):
        if self.kind not in TAP_KINDS:
            raise BlockError(f"tap kind '{self.kind}' unknown; one of {', '.join(TAP_KINDS)}")


def model_blocks(model: torch.nn.Module) -> list[BlockInfo]:
    """Every residual block of the model in forward order, derived from the model itself."""
    blocks: list[BlockInfo] = []
    prev = None
    for stage in range(1, 10):
        layer = getattr(model, f"layer{stage}", None)
        if layer is None:
            break
        for i, block in enumerate(layer):
            bns = sorted(n for n, _ in block.named_children() if re.fullmatch(r"bn\d+", n))
            info = BlockInfo(
                name=f"{stage}.{i}",
                module=f"layer{stage}.{i}",
                index=len(blocks),
                downsample=block.downsample is not None,
                channels=getattr(block, bns[-1]).num_features,
                prev=prev,
                branch_bn=bns[-1],
                block_type=type(block).__name__,
            )
            blocks.append(info)
            prev = info.name
    if not blocks:
        raise BlockError(f"{type(model).__name__} has no residual stages layer1..layerN")
    return blocks


def block_lookup(model_or_blocks, name: str) -> BlockInfo:
    blocks = model_or_blocks if isinstance(model_or_blocks, list) else model_blocks(model_or_blocks)
    for b in blocks:
        if b.name == name:
            return b
    raise BlockError(f"unknown block '{name}'; this model has blocks {', '.join(b.name for b in blocks)}")


def default_study_blocks(blocks: list[BlockInfo]) -> list[str]:
    """The paper's choice: every block but the very first (1.0), whose input is the stem."""
    return [b.name for b in blocks[1:]]


def role_tap(blocks: list[BlockInfo], block: str, role: str, o_relu: str = "pre") -> TapRef:
    """The tensor behind role I, B or O of a studied block."""
    info = block_lookup(blocks, block)
    o_kind = O_PRE if o_relu == "pre" else O_POST
    if role == "B":
        return TapRef(block, B)
    if role == "O":
        return TapRef(block, o_kind)
    if role == "I":
        if info.downsample:
            return TapRef(block, D)
        if info.prev is None:
            return TapRef(block, X)
        return TapRef(info.prev, o_kind)
    raise BlockError(f"role '{role}' unknown; one of I, B, O")


def layer_name(blocks: list[BlockInfo], ref: TapRef) -> str:
    """Module-style name of a tap: what files and FV jobs are called."""
    info = block_lookup(blocks, ref.block)
    if ref.kind == D:
        return f"{info.module}.downsample.1"
    if ref.kind == B:
        return f"{info.module}.{info.branch_bn}"
    if ref.kind == O_PRE:
        return f"{info.module}.prerelu_out"
    if ref.kind == O_POST:
        return info.module
    # X: the block's input; the first block's is the stem's maxpool
    return "maxpool" if info.prev is None else layer_name(blocks, TapRef(info.prev, O_POST))


def parse_layer(blocks: list[BlockInfo], name: str) -> TapRef:
    """Inverse of :func:`layer_name`."""
    m = re.fullmatch(r"layer(\d+)\.(\d+)(?:\.(downsample\.1|bn\d+|prerelu_out))?", name)
    if name == "maxpool":
        return TapRef(blocks[0].name, X)
    if not m:
        raise BlockError(f"unknown layer '{name}'; expected e.g. layer2.0.downsample.1, layer2.0.bn2, layer2.0.prerelu_out, layer2.0")
    block = f"{m.group(1)}.{m.group(2)}"
    info = block_lookup(blocks, block)
    suffix = m.group(3)
    if suffix is None:
        return TapRef(block, O_POST)
    if suffix == "prerelu_out":
        return TapRef(block, O_PRE)
    if suffix == "downsample.1":
        if not info.downsample:
            raise BlockError(f"layer '{name}': block {block} has no downsample")
        return TapRef(block, D)
    if suffix != info.branch_bn:
        raise BlockError(f"layer '{name}': block {block}'s branch ends in {info.branch_bn}, not {suffix}")
    return TapRef(block, B)


def study_layers(blocks: list[BlockInfo], study_blocks: list[str], o_relu: str = "pre") -> dict[str, list[tuple[str, str]]]:
    """FV layers of a study: ``{layer name: [(block, role), ...]}`` in forward order.

    A simple block's I is the previous block's O, so one layer can serve two (block, role) pairs.
    """
    out: dict[str, list[tuple[str, str]]] = {}
    order = {b.name: b.index for b in blocks}
    for block in study_blocks:
        for role in ROLES:
            name = layer_name(blocks, role_tap(blocks, block, role, o_relu))
            out.setdefault(name, []).append((block, role))

    def key(item):
        ref = parse_layer(blocks, item[0])
        return (order[ref.block], TAP_KINDS.index(ref.kind))

    return dict(sorted(out.items(), key=key))
