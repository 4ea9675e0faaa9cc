"""The activations file: its HDF5 layout, written (create, resume, blocks of rows, finish) and read
(:func:`open_activations`, :func:`read_layer`).  The one module that knows the layout; no torch, so
the jobs that only read the file (the exemplar grids, the measurements) start fast.

Layout (one HDF5 file, ``resstream.base.paths.activations_h5``)::

    /layers/{layer}        [N, C] float32, centre neuron (H//2, W//2) of every channel; chunks of
                           ``chunk_rows`` images x C, gzip + shuffle; NaN rows = skipped images
    /spatial/{layer}       [N, C, H, W] float16, full maps of ``activations.spatial_layers`` only
                           (float16 halves a file that is large anyway: layer1 maps are 400 kB per
                           image; the exact centre values are in /layers); one chunk per image
    /images/path           [N] utf-8, path relative to the dataset root (scan order, see data.py)
    /images/class_id       [N] int64 (-1 for a flat folder)
    /images/class_name     [N] utf-8
    /images/ok             [N] bool, False where an unreadable file was skipped (on_bad_image: skip)
    /topk/{layer}/index    [C, k] int64, image rows of the k largest values, best first
    /topk/{layer}/value    [C, k] float32, their activations (tie rule: :mod:`resstream.activations.topk`)
    attrs: format, complete, weights (identity JSON), weights_label, dataset_root, o_relu, layers
           (JSON list), topk, tie_rule, chunk_rows, finished_rows, finished_batches, fingerprint

Safety: the pass writes ``activations.h5.partial`` and ``os.replace``s it into place only once
complete (attr ``complete`` True), so a reader or Snakemake never sees a half-written file under
the final name.  Each batch of ``chunk_rows`` images is written into chunks no earlier batch
touched, flushed, and only then counted in ``finished_rows`` (flushed again): after a kill at any
point the counter never covers rows whose data did not reach the file.  A restarted run resumes
after the last counted batch if the partial file was made for the same dataset listing, layers,
weights and settings (``fingerprint``); otherwise it logs why and starts over.

A full disk: a write that fails ends the job with one line naming the file and the device
(:mod:`resstream.base.disk_space`); the counter never covers a block whose write failed.

``layers`` below are the tapped layers of the pass (:class:`resstream.activations.stream.TappedLayer`):
anything with ``name``, ``channels``, ``height`` and ``width``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from pathlib import Path

import h5py
import numpy as np

from resstream.activations.topk import TIE_RULE, TopK
from resstream.base.disk_space import disk_full_named
from resstream.base.errors import UserError

log = logging.getLogger(__name__)

# The format name records the module that first wrote it (resstream.activations.extract); files
# made since carry the same name, so existing files stay readable.
FORMAT = "resstream.activations.extract/1"
PARTIAL_SUFFIX = ".partial"
SPATIAL_DTYPE = np.float16
STR_DTYPE = h5py.string_dtype("utf-8")


# -- reading ------------------------------------------------------------------------------------
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


def has_layer(f: h5py.File, layer: str) -> bool:
    return f"layers/{layer}" in f


def layer_columns(f: h5py.File, layer: str, channels) -> np.ndarray:
    """``[N, len(channels)]`` centre activations of ``channels`` of one layer, from an open file."""
    return f["layers"][layer][:, :][:, np.asarray(channels)]


def has_topk(f: h5py.File, layer: str) -> bool:
    return f"topk/{layer}/index" in f


def topk_index(f: h5py.File, layer: str) -> np.ndarray:
    """``[C, k]`` image rows of every channel's top-k (-1 pads a channel with fewer valid images)."""
    return f["topk"][layer]["index"][:]


def topk_value(f: h5py.File, layer: str) -> np.ndarray:
    """``[C, k]`` the activations of :func:`topk_index`'s images (NaN where it pads)."""
    return f["topk"][layer]["value"][:]


def image_count(f: h5py.File) -> int:
    return int(f["images/path"].shape[0])


def weights_identity(f: h5py.File) -> dict:
    """The identity of the weights that made the file (:meth:`resstream.model.weights_identity.WeightsIdentity.as_dict`)."""
    return json.loads(f.attrs["weights"])


def image_paths(f: h5py.File) -> np.ndarray:
    """``[N]`` image paths relative to the dataset root, in row order."""
    return f["images/path"].asstr()[:]


def image_ok(f: h5py.File) -> np.ndarray:
    """``[N]`` bool: False where the pass skipped an unreadable image."""
    return f["images/ok"][:].astype(bool)


def dataset_root(f: h5py.File) -> str:
    """The image folder the file was made from, resolved (its rows' paths are relative to it)."""
    return str(f.attrs["dataset_root_resolved"])


def dataset_root_given(f: h5py.File, missing: str) -> str:
    """The image folder as the config named it (``missing`` for a file that does not record it)."""
    return str(f.attrs.get("dataset_root", missing))


# -- what a partial file must match --------------------------------------------------------------
def map_bytes(channels: int, height: int, width: int) -> int:
    """Bytes of one image's full map of a layer as the file stores it (``[C, H, W]`` float16)."""
    return channels * height * width * np.dtype(SPATIAL_DTYPE).itemsize


def expected_bytes(n_images: int, layers, spatial: list[str], topk: int) -> int:
    """Upper bound of the activations file's size before compression: ``[N, C]`` float32 per layer,
    ``[N, C, H, W]`` float16 per spatial layer, the top-k tables and the image listing."""
    centre = sum(n_images * t.channels * 4 for t in layers)
    maps = sum(n_images * map_bytes(t.channels, t.height, t.width) for t in layers if t.name in spatial)
    top = sum(t.channels * topk * 12 for t in layers)
    listing = n_images * 300  # relative path, class name and id, ok flag
    return centre + maps + top + listing + (1 << 20)


def listing_digest(records) -> str:
    """sha256 of the dataset listing (relative paths and class ids, in scan order)."""
    h = hashlib.sha256()
    for r in records:
        h.update(f"{r.path}\t{r.class_id}\n".encode())
    return h.hexdigest()


def run_fingerprint(
    dataset: str, on_bad_image: str, o_relu: str, records, layers, spatial: list[str], identity
) -> dict:
    """What a partial file must match to be resumed: everything that changes its content."""
    return {
        "format": FORMAT,
        "dataset_root": str(Path(dataset).resolve()),
        "n_images": len(records),
        "listing_sha256": listing_digest(records),
        "on_bad_image": on_bad_image,
        "weights_state_dict_sha256": identity.state_dict_sha256,
        "arch": identity.arch,
        "o_relu": o_relu,
        "layers": [[t.name, t.channels, t.height, t.width] for t in layers],
        "spatial_layers": spatial,
    }


# -- the partial file ----------------------------------------------------------------------------
def create_partial(path: str, fingerprint: dict, records, layers, spatial, chunk_rows: int, attrs: dict) -> h5py.File:
    """A new partial file with every dataset allocated (NaN-filled) and nothing counted; a full
    disk ends in one line naming ``path``."""
    with disk_full_named(path):
        return _create_partial(path, fingerprint, records, layers, spatial, chunk_rows, attrs)


def _create_partial(path: str, fingerprint: dict, records, layers, spatial, chunk_rows: int, attrs: dict) -> h5py.File:
    f = h5py.File(path, "w")
    n = len(records)
    img = f.create_group("images")
    img.create_dataset("path", data=np.array([r.path for r in records], dtype=object), dtype=STR_DTYPE)
    img.create_dataset("class_id", data=np.array([r.class_id for r in records], dtype=np.int64))
    img.create_dataset("class_name", data=np.array([r.class_name for r in records], dtype=object), dtype=STR_DTYPE)
    img.create_dataset("ok", shape=(n,), dtype=bool, chunks=(chunk_rows,), fillvalue=False)
    lay = f.create_group("layers")
    for t in layers:
        # fillvalue NaN: rows no batch has written read as "no value", never as a zero activation
        lay.create_dataset(
            t.name,
            shape=(n, t.channels),
            dtype=np.float32,
            chunks=(chunk_rows, t.channels),
            compression="gzip",
            compression_opts=4,
            shuffle=True,
            fillvalue=np.nan,
        )
    if spatial:
        sp = f.create_group("spatial")
        for t in layers:
            if t.name in spatial:
                sp.create_dataset(
                    t.name,
                    shape=(n, t.channels, t.height, t.width),
                    dtype=SPATIAL_DTYPE,
                    chunks=(1, t.channels, t.height, t.width),
                    compression="gzip",
                    compression_opts=1,
                    shuffle=True,
                    fillvalue=np.nan,
                )
    for key, value in attrs.items():
        f.attrs[key] = value
    f.attrs["format"] = FORMAT
    f.attrs["complete"] = False
    f.attrs["fingerprint"] = json.dumps(fingerprint, sort_keys=True)
    f.attrs["chunk_rows"] = chunk_rows
    f.attrs["finished_rows"] = 0
    f.attrs["finished_batches"] = 0
    f.flush()
    return f


def resume_or_explain(path: str, fingerprint: dict) -> tuple[h5py.File | None, str]:
    """Open a partial file for resuming, or say why it cannot be used ("" when there is none)."""
    if not os.path.exists(path):
        return None, ""
    try:
        f = h5py.File(path, "r+")
    except Exception as exc:  # a kill during a metadata write can leave an unreadable file
        return None, f"it cannot be opened ({exc})"
    try:
        old = json.loads(f.attrs["fingerprint"])
        if old != fingerprint:
            keys = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            f.close()
            return None, f"it was made for a different {', '.join(keys)}"
        done = int(f.attrs["finished_rows"])
        if done:
            # the last counted batch must read back (chunks of a killed write are checked by gzip)
            for name in f["layers"]:
                f["layers"][name][done - 1]
        return f, ""
    except Exception as exc:
        f.close()
        return None, f"it is damaged ({type(exc).__name__}: {exc})"


def finished_rows(f: h5py.File) -> int:
    return int(f.attrs["finished_rows"])


def finished_batches(f: h5py.File) -> int:
    return int(f.attrs["finished_batches"])


def chunk_rows_of(f: h5py.File) -> int:
    """Images per block (the file's chunk height), fixed when the file was made."""
    return int(f.attrs["chunk_rows"])


def row_datasets(f: h5py.File, layers, spatial) -> tuple[h5py.Dataset, dict, dict]:
    """``(ok [N], {layer: centre [N, C]}, {layer: maps [N, C, H, W]})``: the datasets a block of rows
    is written to (:class:`resstream.activations.row_blocks.RowBlockWriter`)."""
    centre = {t.name: f["layers"][t.name] for t in layers}
    maps = {t.name: f["spatial"][t.name] for t in layers if t.name in spatial}
    return f["images/ok"], centre, maps


def count_rows(f: h5py.File, rows: int, chunk_rows: int) -> None:
    """Record that the first ``rows`` rows reached the file (call only after their data's flush)."""
    f.attrs["finished_rows"] = rows
    f.attrs["finished_batches"] = math.ceil(rows / chunk_rows)


# -- finishing -----------------------------------------------------------------------------------
def finish(f: h5py.File, layers, chunk_rows: int, topk: int) -> None:
    """The top-k tables, then the file marked complete."""
    ok = image_ok(f)
    if not ok.all():
        bad = list(image_paths(f)[np.flatnonzero(~ok)[:10]])
        log.warning("%d unreadable image(s) skipped (NaN rows, ok=False), e.g. %s", int((~ok).sum()), ", ".join(bad))
    # read ~16 MB of the widest layer at a time, in whole chunks
    widest = max(t.channels for t in layers)
    read_rows = chunk_rows * max(1, (4 << 20) // (chunk_rows * widest))
    with disk_full_named(f.filename):
        _write_topk(f, layers, topk, read_rows)
        f.attrs["complete"] = True
        f.flush()


def _write_topk(f: h5py.File, layers, k: int, read_rows: int):
    if "topk" in f:
        del f["topk"]  # a run killed during this step left a part of it
    group = f.create_group("topk")
    n = f["images/ok"].shape[0]
    for t in layers:
        data = f[f"layers/{t.name}"]
        top = TopK(t.channels, k)
        for r0 in range(0, n, read_rows):
            top.update(data[r0 : r0 + read_rows], r0)
        index, value = top.result()
        g = group.create_group(t.name)
        g.create_dataset("index", data=index)
        g.create_dataset("value", data=value)
    f.attrs["topk"] = k
    f.attrs["tie_rule"] = TIE_RULE


def publish(partial: str, out_path: str) -> None:
    """The complete partial file under its final name (one atomic rename)."""
    os.replace(partial, out_path)


@contextlib.contextmanager
def closed_even_when_full(f: h5py.File):
    """Close the partial file however the pass ends.  After a full disk HDF5 cannot flush what it
    still holds; closing then raises again (the same full disk), which must not hide the first error
    (the file is a partial one: its counter covers only blocks that reached the disk)."""
    try:
        yield f
    except BaseException:
        try:
            f.close()
        except Exception as exc:  # the first error is the one to report
            log.debug("closing %s after an error: %s", f.filename, exc)
        raise
    with disk_full_named(f.filename):
        f.close()
