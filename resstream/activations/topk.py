"""The top-k images of every unit, kept while the rows stream by (docs/method.md#imagenet-variant-a3).

Tie rule: value descending; among equal values the HIGHER image index comes first, which is what
the author's ``torch.sort(descending=True)`` gave.  Current CPU torch is not consistent about ties
(lower index first on small tensors, scrambled on large ones), so the rule is implemented
explicitly.  NaN values (skipped images) are never chosen; a channel with fewer than k valid images
pads with index -1 and value NaN.  numpy only.
"""

from __future__ import annotations

import numpy as np

TIE_RULE = "value descending; among equal values the higher image index first (author's torch.sort, docs/method.md#imagenet-variant-a3); NaN never chosen"


def _rank_rows(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Row order per column: valid first, value descending, then higher index first.
    ``values``/``index`` are [M, C]; returns [M, C] row positions."""
    valid = ~np.isnan(values)
    filled = np.where(valid, values, 0.0)
    # np.lexsort: the LAST key is the primary one; everything is negated to sort descending.
    return np.lexsort((-index, -filled, ~valid), axis=0)


class TopK:
    """Running top-k per column over row blocks, with the tie rule of the module docstring."""

    def __init__(self, channels: int, k: int):
        self.k = k
        self.value = np.full((0, channels), np.nan, dtype=np.float32)
        self.index = np.full((0, channels), -1, dtype=np.int64)

    def update(self, block: np.ndarray, first_row: int):
        rows = np.arange(first_row, first_row + block.shape[0], dtype=np.int64)
        values = np.concatenate([self.value, block.astype(np.float32, copy=False)])
        index = np.concatenate([self.index, np.broadcast_to(rows[:, None], block.shape)])
        order = _rank_rows(values, index)[: self.k]
        self.value = np.take_along_axis(values, order, axis=0)
        self.index = np.take_along_axis(index, order, axis=0)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(index [C, k], value [C, k])``, padded with -1 / NaN where fewer than k are valid."""
        index = self.index.T.copy()
        value = self.value.T.copy()
        invalid = np.isnan(value)
        index[invalid] = -1
        if index.shape[1] < self.k:  # fewer rows than k in the whole dataset
            pad = self.k - index.shape[1]
            index = np.pad(index, ((0, 0), (0, pad)), constant_values=-1)
            value = np.pad(value, ((0, 0), (0, pad)), constant_values=np.nan)
        return index, value


def topk_rows(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of an in-memory ``[N, C]`` array (same rule as the file's /topk)."""
    top = TopK(values.shape[1], k)
    top.update(values, 0)
    return top.result()
