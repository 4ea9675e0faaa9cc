"""Residual blocks of a torchvision CNN, their studied layers and the names those layers go by.
The block table is data (:class:`BlockInfo`), found in a built network by
:func:`resstream.model.walk.model_blocks` and recorded per architecture by
:mod:`resstream.model.structure`; this module imports no torch.

ResNet blocks are named like the paper, ``"2.1"`` = ``model.layer2[1]``; every other family's blocks
by their module path (``features.3.1``, ``trunk_output.block2.block2-1``).  Per-family semantics live
in :mod:`resstream.model.families`.  For every studied block the paper reads three tensors (docs/method.md#taps-i-b-and-o):

* ``I`` the block's input as the residual stream carries it: the skip projection's output
  (``downsample``, ``proj``) where there is one, otherwise the block's input, which for a block fed
  by the previous block is that block's O (pre- or post-ReLU, ``o_relu``);
* ``B`` the branch as it enters the sum (``bn2``; ``bn3`` in Bottleneck; see families.py);
* ``O`` the sum before the nonlinearity that follows it (``o_relu: pre``) or after it (``post``);
  in families with nothing after the sum, the block's output.

Each tensor is a *layer* with a module-style name, used for files and for FV jobs:
``layer2.0.downsample.1``, ``layer2.0.bn2``, ``layer2.0.prerelu_out`` (pre-ReLU sum) and
``layer2.0`` (post-ReLU output); a block input that no block produces is named after the module
that does (``maxpool``, ``features.2``).  A simple block's I is the previous block's O layer, so its
FVs are shared, exactly as in the paper's 4,672-unit study.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from resstream.base.errors import UserError

# The tensors a block exposes (a tap's ``tensor``): its input X, the skip projection's output D,
# the branch B, the sum O_pre and the output O_post (the sum after its nonlinearity, or the sum).
X, D, B, O_PRE, O_POST = "X", "D", "B", "O_pre", "O_post"
BLOCK_TENSORS = (X, D, B, O_PRE, O_POST)
ROLES = ("I", "B", "O")
O_RELU_CHOICES = ("pre", "post")  # study.o_relu: O (and a simple block's I) before or after the ReLU
RESNET_NAME_RE = re.compile(r"^layer(\d+)\.(\d+)$")


class BlockError(UserError, ValueError):
    """An unknown block or layer name; the message lists the valid ones."""


@dataclass(frozen=True)
class BlockInfo:
    name: str  # "2.1" (ResNet) or the module path ("features.3.1")
    module: str  # "layer2.1"
    index: int  # position among all blocks of the model, 0-based
    channels: int  # output channels of the block (= channels of I, B and O where it has a sum)
    in_channels: int  # channels of the block's input
    prev: str | None  # previous block's name; None for the first block
    input_from: str  # module whose output is the block's input ("maxpool", "layer1.2", "features.2")
    branch_out: str  # submodule whose output is B: "bn2" (BasicBlock), "bn3" (Bottleneck), "f.c", ...
    skip_module: str | None  # the skip path's projection ("downsample", "proj"); None: identity
    after_sum: str | None  # the nonlinearity after the sum ("ReLU"); None: O is the sum itself
    block_class: str  # "BasicBlock" | "Bottleneck" | "CNBlock" | ...
    has_sum: bool  # False: a block of the family without a residual sum (not studied)
    stage: int  # 1-based stage (figure rows): the module-tree stage, or the output-stride group
    in_stride: int  # total stride of the block's input (jitter schedule)

    @property
    def downsample(self) -> bool:
        """True when the skip path goes through a projection (ResNet downsample, RegNet proj)."""
        return self.skip_module is not None

    @property
    def skip_path(self) -> str:
        """How the skip path reaches the sum: "downsample" (a projection) or "simple" (identity)."""
        return "downsample" if self.downsample else "simple"


@dataclass(frozen=True)
class TapRef:
    """One tensor of one block: ``TapRef("2.0", "D")``."""

    block: str
    tensor: str

    def __post_init__(self):
        if self.tensor not in BLOCK_TENSORS:
            raise BlockError(f"block tensor '{self.tensor}' unknown; one of {', '.join(BLOCK_TENSORS)}")


def block_lookup(blocks: list[BlockInfo], name: str) -> BlockInfo:
    for b in blocks:
        if b.name == name:
            return b
    raise BlockError(f"unknown block '{name}'; this model has blocks {', '.join(b.name for b in blocks)}")


def default_study_blocks(blocks: list[BlockInfo]) -> list[str]:
    """The paper's choice, generalised: every block with a residual sum but the model's first block
    when its input is the stem (resnet's 1.0)."""
    studied = [b for b in blocks if b.has_sum]
    if studied and studied[0].index == 0:
        studied = studied[1:]
    return [b.name for b in studied]


def o_tensor(info: BlockInfo, o_relu: str) -> str:
    """The tensor read as a block's O: the sum (``pre``) or the sum after its nonlinearity; a block
    with nothing after the sum (or without a sum) has one O, its output."""
    return O_PRE if o_relu == "pre" and info.after_sum else O_POST


def role_tap(blocks: list[BlockInfo], block: str, role: str, o_relu: str = "pre") -> TapRef:
    """The tensor behind role I, B or O of a studied block."""
    info = block_lookup(blocks, block)
    if role == "B":
        return TapRef(block, B)
    if role == "O":
        return TapRef(block, o_tensor(info, o_relu))
    if role == "I":
        if info.downsample:
            return TapRef(block, D)
        prev = block_lookup(blocks, info.prev) if info.prev is not None else None
        if prev is not None and prev.module == info.input_from:
            return TapRef(prev.name, o_tensor(prev, o_relu))
        return TapRef(block, X)
    raise BlockError(f"role '{role}' unknown; one of I, B, O")


def layer_name(blocks: list[BlockInfo], ref: TapRef) -> str:
    """Module-style name of a tap: what files and FV jobs are called."""
    info = block_lookup(blocks, ref.block)
    if ref.tensor == D:
        return f"{info.module}.{info.skip_module}.1"
    if ref.tensor == B:
        return f"{info.module}.{info.branch_out}"
    if ref.tensor == O_PRE:
        return f"{info.module}.prerelu_out"
    if ref.tensor == O_POST:
        return info.module
    return info.input_from  # X: the block's input, named after the module that produces it


@functools.lru_cache(maxsize=32)
def _layer_index(blocks: tuple[BlockInfo, ...]) -> dict[str, TapRef]:
    """Every layer name a model's blocks expose -> its tap (the first block's, for a shared one)."""
    index: dict[str, TapRef] = {}
    for info in blocks:
        if info.input_from not in index:
            index[info.input_from] = TapRef(info.name, X)
        taps = [D] * info.downsample + [B] * info.has_sum + [O_PRE] * bool(info.after_sum) + [O_POST]
        for tensor in taps:
            index.setdefault(layer_name(list(blocks), TapRef(info.name, tensor)), TapRef(info.name, tensor))
    return index


def parse_layer(blocks: list[BlockInfo], name: str) -> TapRef:
    """Inverse of :func:`layer_name`."""
    ref = _layer_index(tuple(blocks)).get(name)
    if ref is not None:
        return ref
    for info in blocks:
        if name.startswith(info.module + "."):
            suffix = name[len(info.module) + 1 :]
            if suffix.endswith(".1") and not info.downsample:
                raise BlockError(f"layer '{name}': block {info.name} has no skip projection (downsample)")
            if suffix == "prerelu_out":
                raise BlockError(
                    f"layer '{name}': block {info.name} has no nonlinearity after its sum; its O is {info.module}"
                )
            if not info.has_sum:
                raise BlockError(f"layer '{name}': block {info.name} has no residual sum, so no branch B")
            raise BlockError(f"layer '{name}': block {info.name}'s branch ends in {info.branch_out}, not {suffix}")
    examples = list(_layer_index(tuple(blocks)))[1:5]
    raise BlockError(f"unknown layer '{name}'; expected e.g. {', '.join(examples)} (see: resstream info)")


def study_layers(
    blocks: list[BlockInfo], study_blocks: list[str], o_relu: str = "pre"
) -> dict[str, list[tuple[str, str]]]:
    """FV layers of a study: ``{layer name: [(block, role), ...]}`` in forward order.

    A simple block's I is the previous block's O, so one layer can serve two (block, role) pairs.
    """
    out: dict[str, list[tuple[str, str]]] = {}
    for block in study_blocks:
        for role in ROLES:
            name = layer_name(blocks, role_tap(blocks, block, role, o_relu))
            out.setdefault(name, []).append((block, role))
    return dict(sorted(out.items(), key=lambda item: forward_order(blocks, parse_layer(blocks, item[0]))))


def forward_order(blocks: list[BlockInfo], ref: TapRef) -> tuple[int, int]:
    """Sort key of a tap: its block's position, then the tensor's position inside the block."""
    return (block_lookup(blocks, ref.block).index, BLOCK_TENSORS.index(ref.tensor))
