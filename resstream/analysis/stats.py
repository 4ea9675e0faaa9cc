"""Statistics the measurement jobs record in the raw tables (docs/method.md#inhibition-fig-4, docs/method.md#imagenet-variant-a3): means of ReLU over a
unit's stimuli and Spearman's rho of B against I over the dataset images with I > 0.

They live apart from :mod:`resstream.analysis.metrics` (which derives M, m, n, SM and the groups from the
raw tables and reuses these), so that a change in how the metrics are derived never reruns the
measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def as_f64(x) -> np.ndarray:
    """A 1-d float64 array of ``x`` (a scalar becomes one element)."""
    return np.atleast_1d(np.asarray(x, dtype=np.float64))


def relu_mean(x) -> np.ndarray:
    """Mean of ReLU over the last axis for ``[C, K]`` stimuli sets, plain ReLU for ``[C]``.

    NaN stimuli (unreadable images) are left out of the mean.

    The ImageNet variant's "code" reading (``analysis.a3_mean: code``) uses these means of ReLU over
    the 9 images; the paper's reading takes ReLU of the plain mean, which the table also records.
    """
    x = np.asarray(x, dtype=np.float64)
    r = np.maximum(x, 0.0)  # keeps NaN: a missing stimulus is never read as 0
    if r.ndim != 2:
        return np.atleast_1d(r)
    # stimuli that could not be read (NaN) are left out of the mean; all missing stays NaN
    n = np.isfinite(r).sum(axis=-1)
    return np.where(n > 0, np.where(np.isfinite(r), r, 0.0).sum(axis=-1) / np.maximum(n, 1), np.nan)


STAT_OK = "ok"


@dataclass(frozen=True)
class StatResult:
    statistic: float  # rho or F; NaN when it cannot be computed
    pvalue: float
    n: int  # observations used (after dropping NaN)
    status: str  # "ok" or why the value is NaN (and how many NaN pairs were dropped)

    def as_dict(self) -> dict:
        return {
            "statistic": json_float(self.statistic),
            "pvalue": json_float(self.pvalue),
            "n": self.n,
            "status": self.status,
        }


def json_float(x):
    return None if x is None or not np.isfinite(x) else float(x)


def spearman(x, y) -> StatResult:
    """Spearman rho and two-sided p over the finite pairs; NaN with a status when undefined."""
    x, y = np.broadcast_arrays(as_f64(x), as_f64(y))
    finite = np.isfinite(x) & np.isfinite(y)
    dropped = int((~finite).sum())
    x, y = x[finite], y[finite]
    note = f" ({dropped} non-finite pairs dropped)" if dropped else ""
    if len(x) < 3:
        return StatResult(np.nan, np.nan, len(x), f"too few pairs ({len(x)} < 3){note}")
    if np.all(x == x[0]) or np.all(y == y[0]):
        return StatResult(np.nan, np.nan, len(x), f"constant input, rho undefined{note}")
    from scipy import stats  # here, not at the top: see metrics.anova

    res = stats.spearmanr(x, y)
    return StatResult(float(res.statistic), float(res.pvalue), len(x), (STAT_OK + note) if note else STAT_OK)


def spearman_where_input_positive(i_curve, b_curve) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fig 4 bottom, per channel: rho of B against I over the images with I > 0 (docs/method.md#inhibition-fig-4).

    ``i_curve``, ``b_curve``: ``[N, C]`` centre activations to N dataset images (NaN rows for
    unreadable images are dropped).  Returns ``(rho[C], p[C], n_used[C], status[C])``.
    """
    i_curve, b_curve = np.asarray(i_curve, dtype=np.float64), np.asarray(b_curve, dtype=np.float64)
    if i_curve.shape != b_curve.shape or i_curve.ndim != 2:
        raise ValueError(f"I and B curves must both be [N, C]; got {i_curve.shape} and {b_curve.shape}")
    C = i_curve.shape[1]
    rho, p, n_used = np.full(C, np.nan), np.full(C, np.nan), np.zeros(C, dtype=np.int64)
    status = np.empty(C, dtype=object)
    for c in range(C):
        i, b = i_curve[:, c], b_curve[:, c]
        with np.errstate(invalid="ignore"):
            keep = (i > 0) & np.isfinite(b)
        r = spearman(i[keep], b[keep])
        rho[c], p[c], n_used[c], status[c] = r.statistic, r.pvalue, r.n, r.status
    return rho, p, n_used, status
