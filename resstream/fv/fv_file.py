"""``fv.h5``, the file beside an FV chunk folder's PNGs: written and read here only.

It holds per unit the channel, its status ('ok' | 'dead' | 'nan'), the final activation, the seed,
the per-step curve and the float image; and as attributes the layer, its tap, the objective, the
settings the FVs were made with (:class:`~resstream.fv.settings.FVSettings`' fields and how the
job ran: device, batching), the weights identity, the seconds taken and the preprocessing.
Readers get a :class:`FVFile` (everything but the arrays of images and curves).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import h5py
import numpy as np

from resstream.base.paths import FV_FILE_NAME
from resstream.base.tables import weights_attr
from resstream.fv.settings import FVSettings

FV_FILE_DATASETS = ("channels", "status", "final_activation", "seed", "curve", "image")


def fv_file_path(chunk_dir: str) -> str:
    return os.path.join(chunk_dir, FV_FILE_NAME)


@dataclass(frozen=True)
class FVFile:
    """What one chunk's ``fv.h5`` records of its units and of how they were made."""

    path: str
    layer: str
    channels: tuple[int, ...]
    status: tuple[str, ...]
    settings: dict | None  # the FV settings and how the job ran, as recorded (None: not recorded)
    weights: dict | None  # the weights identity (None: the file records none)

    def status_by_channel(self) -> dict[int, str]:
        return dict(zip(self.channels, self.status))

    def fv_settings(self) -> FVSettings | None:
        """The recorded settings as the FV jobs take them."""
        return FVSettings.from_record(self.settings) if self.settings is not None else None


def write_fv_file(path: str, result, weights: dict, layer_tap: str) -> None:
    """Write ``fv.h5`` of an :class:`~resstream.fv.render.FVResult` made with ``weights`` (an identity
    as a dict) at ``layer_tap`` (``block:tensor``)."""
    with h5py.File(path, "w") as f:
        f["channels"] = np.asarray(result.channels, dtype=np.int64)
        f["status"] = np.asarray(result.status, dtype=object).astype("S")
        f["final_activation"] = result.final_activation
        f["seed"] = np.asarray(result.seeds, dtype=np.int64)
        f.create_dataset("curve", data=result.curve, compression="gzip")
        f.create_dataset("image", data=result.images, compression="gzip", chunks=(1, 3, 224, 224))
        f.attrs["layer"] = result.layer
        f.attrs["tap"] = layer_tap
        f.attrs["objective"] = result.objective
        f.attrs["settings"] = json.dumps(result.settings)
        f.attrs["weights"] = json.dumps(weights)
        f.attrs["seconds"] = result.seconds
        f.attrs["preprocessing"] = json.dumps(result.preprocessing, sort_keys=True)


def read_fv_file(chunk_dir: str) -> FVFile:
    """The record of the chunk folder's ``fv.h5`` (h5py's OSError where the file cannot be opened;
    a ``weights`` attribute that is not JSON is refused with one line)."""
    path = fv_file_path(chunk_dir)
    with h5py.File(path, "r") as f:
        status = f["status"].asstr()[:] if f["status"].dtype.kind in "OS" else f["status"][:]
        settings = f.attrs.get("settings")
        return FVFile(
            path=path,
            layer=str(f.attrs.get("layer", "")),
            channels=tuple(int(c) for c in f["channels"][:]),
            status=tuple(str(s) for s in status),
            settings=json.loads(settings) if settings is not None else None,
            weights=weights_attr(f.attrs, path),
        )
