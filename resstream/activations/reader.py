"""The activations file (layout: :mod:`resstream.activations.extract`) as readers see it: opened only when
complete.  No torch here, so the jobs that only read it (the exemplar grids) start fast."""

from __future__ import annotations

import h5py
import numpy as np

from resstream.errors import UserError

FORMAT = "resstream.activations.extract/1"
PARTIAL_SUFFIX = ".partial"


class IncompleteActivationsError(UserError, RuntimeError):
    """An activations file that is not (yet) complete, e.g. a ``.partial`` left by a killed run."""


def open_activations(path: str) -> h5py.File:
    """Open a complete activations file read-only; refuses partial files."""
    f = h5py.File(path, "r")
    if f.attrs.get("format") != FORMAT or not bool(f.attrs.get("complete", False)):
        f.close()
        raise IncompleteActivationsError(
            f"{path} is not a complete activations file (a killed run's partial?). Fix: rerun the "
            f"activations rule; it resumes from the last finished batch."
        )
    return f


def read_layer(path: str, layer: str) -> np.ndarray:
    """``[N, C]`` centre activations of one layer (NaN rows: skipped images); ``path`` is the
    file's path (the file is opened and closed here), not an open ``h5py.File``."""
    with open_activations(path) as f:
        if layer not in f["layers"]:
            raise KeyError(f"layer {layer} not in {path}; it holds {', '.join(f['layers'])}")
        return f["layers"][layer][:]
