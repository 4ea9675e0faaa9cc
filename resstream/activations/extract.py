"""Dataset activations (spec §6, §8, §13): one streaming pass over an image folder that reads the
centre neuron of every studied layer at once, and the top-k images of every unit (their exemplar
grids: :mod:`resstream.activations.exemplars`; reading the file: :mod:`resstream.activations.reader`).

The author ran one full ImageNet pass per layer (18 of them) and held all 50,000 float images in RAM
(spec §12).  Here every batch goes through ONE forward that stops after the deepest tapped block
(:func:`resstream.model.taps.block_taps`) and only the centre activations leave the batch, so memory is
bounded by the batch whatever the dataset size.

File layout (one HDF5 file, ``resstream.workflow.paths.activations_h5``)::

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
    /topk/{layer}/value    [C, k] float32, their activations
    attrs: format, complete, weights (identity JSON), weights_label, dataset_root, o_relu, layers
           (JSON list), topk, tie_rule, chunk_rows, finished_rows, finished_batches, fingerprint

Top-k tie rule: value descending; among equal values the HIGHER image index comes first, which is
what the author's ``torch.sort(descending=True)`` gave (spec §8).  Current CPU torch is not
consistent about ties (lower index first on small tensors, scrambled on large ones), so the rule is
implemented explicitly.  NaN values (skipped images) are never chosen; a channel with fewer than k
valid images pads with index -1 and value NaN.

Safety: the pass writes ``activations.h5.partial`` and ``os.replace``s it into place only once
complete (attr ``complete`` True), so a reader or Snakemake never sees a half-written file under
the final name.  Each batch of ``chunk_rows`` images is written into chunks no earlier batch
touched, flushed, and only then counted in ``finished_rows`` (flushed again): after a kill at any
point the counter never covers rows whose data did not reach the file.  A restarted run resumes
after the last counted batch if the partial file was made for the same dataset listing, layers,
weights and settings (``fingerprint``); otherwise it logs why and starts over.  Nothing is random,
so a resumed file holds the same values as an uninterrupted one.

A full disk: before any work the pass checks that the device has room for the whole file
(uncompressed, :func:`expected_bytes`), and before each block that it has room for that block; a
write that fails anyway ends the job with one line naming the file and the device
(:mod:`resstream.workflow.disk_space`).  The counter never covers a block whose write failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from resstream.activations.reader import (  # noqa: F401  (re-exported: reading the file)
    FORMAT,
    PARTIAL_SUFFIX,
    IncompleteActivationsError,
    open_activations,
    read_layer,
)
from resstream.model.blocks import TapRef, model_blocks, parse_layer
from resstream.data.dataset import DatasetError, ImageFolderDataset, scan_image_folder
from resstream.model.device import resolve_device
from resstream.workflow.disk_space import DiskSpaceError, check_free_space, disk_full_error, is_disk_full
from resstream.model.taps import block_taps, center_activation
from resstream.model.weights import load_model_param

log = logging.getLogger("resstream.activations.extract")

TIE_RULE = "value descending; among equal values the higher image index first (author's torch.sort, spec §8); NaN never chosen"
SPATIAL_DTYPE = np.float16
STR_DTYPE = h5py.string_dtype("utf-8")


@dataclass(frozen=True)
class TappedLayer:
    name: str
    ref: TapRef
    channels: int
    height: int
    width: int


# -- the plan ------------------------------------------------------------------------------------
def probe_layers(model: torch.nn.Module, layer_names: list[str], device: torch.device) -> list[TappedLayer]:
    """Channels and map size of every tapped layer, from one forward of a blank image (the model's
    own structure decides, e.g. a Bottleneck stage's input has fewer channels than its output)."""
    blocks = model_blocks(model)
    refs = [parse_layer(blocks, n) for n in layer_names]
    with torch.inference_mode():
        taps = block_taps(model, torch.zeros(1, 3, 224, 224, device=device), refs)
    return [TappedLayer(n, r, *taps[r].shape[1:4]) for n, r in zip(layer_names, refs)]


def expected_bytes(n_images: int, layers: list[TappedLayer], spatial: list[str], topk: int) -> int:
    """Upper bound of the activations file's size before compression: ``[N, C]`` float32 per layer,
    ``[N, C, H, W]`` float16 per spatial layer, the top-k tables and the image listing."""
    centre = sum(n_images * t.channels * 4 for t in layers)
    maps = sum(n_images * t.channels * t.height * t.width * np.dtype(SPATIAL_DTYPE).itemsize for t in layers if t.name in spatial)
    top = sum(t.channels * topk * 12 for t in layers)
    listing = n_images * 300  # relative path, class name and id, ok flag
    return centre + maps + top + listing + (1 << 20)


def listing_digest(records) -> str:
    """sha256 of the dataset listing (relative paths and class ids, in scan order)."""
    h = hashlib.sha256()
    for r in records:
        h.update(f"{r.path}\t{r.class_id}\n".encode())
    return h.hexdigest()


def run_fingerprint(dataset: str, on_bad_image: str, o_relu: str, records, layers: list[TappedLayer], spatial: list[str],
                    identity) -> dict:
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


# -- top-k ---------------------------------------------------------------------------------------
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


def _write_topk(f: h5py.File, layers: list[TappedLayer], k: int, read_rows: int):
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


# -- the partial file ----------------------------------------------------------------------------
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
        lay.create_dataset(t.name, shape=(n, t.channels), dtype=np.float32, chunks=(chunk_rows, t.channels),
                           compression="gzip", compression_opts=4, shuffle=True, fillvalue=np.nan)
    if spatial:
        sp = f.create_group("spatial")
        for t in layers:
            if t.name in spatial:
                sp.create_dataset(t.name, shape=(n, t.channels, t.height, t.width), dtype=SPATIAL_DTYPE,
                                  chunks=(1, t.channels, t.height, t.width), compression="gzip",
                                  compression_opts=1, shuffle=True, fillvalue=np.nan)
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


def _resume_or_explain(path: str, fingerprint: dict) -> tuple[h5py.File | None, str]:
    """Open a partial file for resuming, or say why it cannot be used."""
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


class _RowBlockWriter:
    """Writes rows in whole blocks of ``chunk_rows`` (the file's chunk height): a block is written
    once, into fresh chunks, flushed, and then counted.  With batch_size == chunk_rows (a run that
    made the file) one block is one batch; a resumed run with another batch size buffers rows.

    A full disk: HDF5 reports a failed write only where h5py can raise it (a flush; errors while
    it releases a dataset are printed and dropped, and later writes can crash the process), so a
    block is written only when the device has room for it (its uncompressed size plus
    ``WRITE_MARGIN`` for HDF5's own records), and the datasets stay open so that a flush is where
    any failure surfaces."""

    WRITE_MARGIN = 256 << 10

    def __init__(self, f: h5py.File, layers, spatial, chunk_rows: int, start: int):
        self.f = f
        self.datasets = {"ok": f["images/ok"], **{f"layers/{t.name}": f[f"layers/{t.name}"] for t in layers},
                         **{f"spatial/{t.name}": f[f"spatial/{t.name}"] for t in layers if t.name in spatial}}
        self.layers = layers
        self.spatial = [t for t in layers if t.name in spatial]
        self.chunk_rows = chunk_rows
        self.start = start
        self.fill = 0
        self.ok = np.zeros(chunk_rows, dtype=bool)
        self.centre = {t.name: np.empty((chunk_rows, t.channels), np.float32) for t in layers}
        self.maps = {t.name: np.empty((chunk_rows, t.channels, t.height, t.width), SPATIAL_DTYPE) for t in self.spatial}

    def add(self, first_row: int, ok: np.ndarray, centre: dict, maps: dict):
        if first_row != self.start + self.fill:
            raise RuntimeError(f"rows out of order: got row {first_row}, expected {self.start + self.fill}")
        pos, n = 0, len(ok)
        while pos < n:
            take = min(n - pos, self.chunk_rows - self.fill)
            dst = slice(self.fill, self.fill + take)
            src = slice(pos, pos + take)
            self.ok[dst] = ok[src]
            for name, buf in self.centre.items():
                buf[dst] = centre[name][src]
            for name, buf in self.maps.items():
                buf[dst] = maps[name][src]
            self.fill += take
            pos += take
            if self.fill == self.chunk_rows:
                self._write_block()

    def finish(self):
        if self.fill:
            self._write_block()

    def _block_bytes(self, n: int) -> int:
        return n * (1 + sum(b.itemsize * b[0].size for b in (*self.centre.values(), *self.maps.values())))

    def _write_block(self):
        r0, r1, n = self.start, self.start + self.fill, self.fill
        if shutil.disk_usage(os.path.dirname(os.path.abspath(self.f.filename))).free < self._block_bytes(n) + self.WRITE_MARGIN:
            raise disk_full_error(self.f.filename)  # nothing of this block was handed to HDF5
        try:
            self.datasets["ok"][r0:r1] = self.ok[:n]
            for name, buf in self.centre.items():
                self.datasets[f"layers/{name}"][r0:r1] = buf[:n]
            for name, buf in self.maps.items():
                self.datasets[f"spatial/{name}"][r0:r1] = buf[:n]
            self.f.flush()  # data first ...
            self.f.attrs["finished_rows"] = r1
            self.f.attrs["finished_batches"] = math.ceil(r1 / self.chunk_rows)
            self.f.flush()  # ... then the counter: a kill between the two only repeats this block
        except Exception as exc:
            if is_disk_full(exc):
                raise disk_full_error(self.f.filename) from None
            raise
        self.start, self.fill = r1, 0  # counted only once the write has succeeded

    @property
    def written_rows(self) -> int:
        """Rows whose block reached the file (buffered rows do not count)."""
        return self.start


# -- the pass ------------------------------------------------------------------------------------
def limit_heap_growth(threshold: int = 1 << 20) -> bool:
    """Serve allocations >= 1 MiB by mmap, always (glibc only; returns False elsewhere).

    glibc raises its mmap threshold each time a large block is freed, after which the per-batch
    tensors (1-32 MB) come from the heap and fragment it.  Measured on 400 images, batch 8, layer1
    taps: RSS crept up by 450 MB over the pass; with a fixed threshold it stays flat (+70 MB).  At
    batch 64 on the 18 paper-era layers: peak 1.2 GB instead of 1.5-1.6 GB.  Setting the threshold turns
    glibc's adjustment off for the whole process; the price is page faults on fresh mappings (sys
    time +25 %, wall time unchanged within the noise of a 2-core machine).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_mmap_threshold = -3  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, threshold))
    except (OSError, AttributeError):
        return False


def _worker_error(exc: DatasetError) -> DatasetError:
    """A DataLoader worker re-raises with its traceback in the message; keep the one line."""
    lines = [l for l in str(exc).splitlines() if "DatasetError: " in l]
    return DatasetError(lines[-1].split("DatasetError: ", 1)[1]) if lines else exc


def _format_eta(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _stream(f, model, device, dataset, layers, spatial, chunk_rows, start, batch_size, workers, log_every):
    n = len(dataset)
    subset = torch.utils.data.Subset(dataset, range(start, n))
    loader = torch.utils.data.DataLoader(
        subset, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=device.type == "cuda"
    )
    refs = [t.ref for t in layers]
    spatial_set = set(spatial)
    writer = _RowBlockWriter(f, layers, spatial, chunk_rows, start)
    n_batches = math.ceil((n - start) / batch_size)
    t0 = time.perf_counter()
    done = 0
    try:
        for b, (x, index, ok) in enumerate(loader, start=1):
            with torch.inference_mode():
                taps = block_taps(model, x.to(device, non_blocking=True), refs)
            ok = ok.numpy().astype(bool)
            bad = ~ok
            centre, maps = {}, {}
            for t in layers:
                a = taps[t.ref]
                # a copy: a view would keep the whole map alive until the block is written
                c = np.array(center_activation(a).float().cpu(), dtype=np.float32)
                c[bad] = np.nan  # a skipped image has no activations (its zero tensor is no image)
                centre[t.name] = c
                if t.name in spatial_set:
                    m = a.to(torch.float16).cpu().numpy()
                    m[bad] = np.nan
                    maps[t.name] = m
            del taps
            writer.add(int(index[0]), ok, centre, maps)
            done += len(ok)
            if b == n_batches:
                writer.finish()  # the last, possibly short, block
            if b % log_every == 0 or b == n_batches:
                elapsed = time.perf_counter() - t0
                rate = done / elapsed if elapsed > 0 else float("nan")
                left = n - start - done
                # the images counted are those whose block reached the file, never buffered ones
                log.info("batch %d/%d: %d/%d images written, %.1f img/s, ETA %s", b, n_batches, writer.written_rows, n,
                         rate, _format_eta(left / rate) if rate > 0 else "?")
        writer.finish()
    except DatasetError as exc:
        raise _worker_error(exc) from None


def extract_activations(out_path: str, *, model: dict, dataset: str, on_bad_image: str, layers: list[str],
                        spatial_layers: list[str], topk: int, o_relu: str, batch_size: int = 64, workers: int = 2,
                        log_every: int = 10, device: str = "auto", gpus: int | None = None) -> str:
    """The dataset pass (the ``activations`` job): the centre neuron of every layer in ``layers``
    (and the full maps of ``spatial_layers``) for every image of the folder ``dataset``, written to
    ``out_path``; resumes a partial run.  ``model``: the rule's model param
    (:func:`resstream.model.weights.model_param`); ``batch_size``, ``workers``, ``log_every``, ``device``
    and ``gpus`` (what the job declared, :func:`resstream.model.device.resolve_device`) change how it
    runs, not what it writes."""
    limit_heap_growth()
    if dataset is None:
        raise DatasetError("dataset.path is not set. Fix: point it at an image folder (ImageNet val: class sub-folders).")
    records = scan_image_folder(dataset)
    net, identity = load_model_param(model)
    run_on = resolve_device(device, gpus)
    net.to(run_on)
    tapped = probe_layers(net, layers, run_on)
    fingerprint = run_fingerprint(dataset, on_bad_image, o_relu, records, tapped, spatial_layers, identity)

    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    partial = out_path + PARTIAL_SUFFIX
    f, why_not = _resume_or_explain(partial, fingerprint)
    start = int(f.attrs["finished_rows"]) if f is not None else 0
    left = 1 - start / max(1, len(records))
    try:
        check_free_space(out_path, int(expected_bytes(len(records), tapped, spatial_layers, topk) * left),
                         f"the activations file {out_path} ({len(records) - start} images, {len(tapped)} layers)")
    except DiskSpaceError:
        if f is not None:
            f.close()
        raise
    if f is None:
        if why_not:
            log.warning("not resuming %s: %s; starting over", partial, why_not)
        chunk_rows = min(batch_size, len(records))
        attrs = {
            "weights": json.dumps(identity.as_dict(), sort_keys=True),
            "weights_label": identity.label,
            "dataset_root": str(dataset),
            "dataset_root_resolved": fingerprint["dataset_root"],
            "o_relu": o_relu,
            "layers": json.dumps([t.name for t in tapped]),
            "spatial_layers": json.dumps(spatial_layers),
            "center_rule": "(H//2, W//2) of every channel",
            "transform": "Resize(256) antialiased, CenterCrop(224), ToTensor, ImageNet Normalize",
        }
        f = _create_partial_or_explain(partial, fingerprint, records, tapped, spatial_layers, chunk_rows, attrs)
    else:
        chunk_rows = int(f.attrs["chunk_rows"])
        log.info("resuming %s after %d finished batches (%d/%d images)", partial, int(f.attrs["finished_batches"]),
                 start, len(records))
        if start < len(records) and batch_size != chunk_rows:
            log.info("batch_size %d differs from the partial file's %d: rows are buffered into its blocks; "
                     "values may differ from an uninterrupted run in the last float bits", batch_size, chunk_rows)
    log.info("%d images from %s, %d layers (%s), weights %s, device %s", len(records), dataset, len(tapped),
             ", ".join(t.name for t in tapped), identity.label, run_on)
    with _closed_even_when_full(f):
        if start < len(records):
            pictures = ImageFolderDataset(dataset, on_bad_image=on_bad_image, records=records)
            _stream(f, net, run_on, pictures, tapped, spatial_layers, chunk_rows, start, batch_size, workers, log_every)
        _finish(f, tapped, chunk_rows, topk)
    os.replace(partial, out_path)
    log.info("wrote %s", out_path)
    return out_path


def _create_partial_or_explain(path: str, *args) -> h5py.File:
    try:
        return _create_partial(path, *args)
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full_error(path) from None
        raise


def _finish(f: h5py.File, layers: list[TappedLayer], chunk_rows: int, topk: int) -> None:
    """The top-k tables, then the file marked complete."""
    ok = f["images/ok"][:]
    if not ok.all():
        bad = [p.decode() if isinstance(p, bytes) else p for p in f["images/path"][np.flatnonzero(~ok)[:10]]]
        log.warning("%d unreadable image(s) skipped (NaN rows, ok=False), e.g. %s", int((~ok).sum()), ", ".join(bad))
    # read ~16 MB of the widest layer at a time, in whole chunks
    widest = max(t.channels for t in layers)
    read_rows = chunk_rows * max(1, (4 << 20) // (chunk_rows * widest))
    try:
        _write_topk(f, layers, topk, read_rows)
        f.attrs["complete"] = True
        f.flush()
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full_error(f.filename) from None
        raise


@contextlib.contextmanager
def _closed_even_when_full(f: h5py.File):
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
    try:
        f.close()
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full_error(f.filename) from None
        raise
