"""The questions the study asks of one block class (:class:`BlockAdapter`), answered per class by
:mod:`resstream.model.adapters` (torchvision) and :mod:`resstream.model.timm_adapters` (timm).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BlockAdapter:
    """Where one block class keeps its I, B and O (module paths relative to the block)."""

    has_sum: Callable[[torch.nn.Module], bool]
    branch_out: Callable[[torch.nn.Module], str]  # the submodule whose output is B as it enters the sum
    skip_module: Callable[[torch.nn.Module], str | None]  # the skip path's projection, if any
    # the nonlinearity applied to the sum ("ReLU"), None when O is the sum itself; or a function of the
    # block giving either (timm blocks that may end linear)
    after_sum: str | None | Callable[[torch.nn.Module], str | None]
    channels: Callable[[torch.nn.Module], int]  # output channels (= channels of B and O)
    branch_weights: Callable[[torch.nn.Module], tuple[torch.Tensor, torch.Tensor]]  # (per-channel scale, last weight)
