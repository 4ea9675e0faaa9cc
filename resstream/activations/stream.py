"""Dataset activations (docs/method.md#top-k-and-ties, docs/method.md#imagenet-variant-a3): one streaming pass over an image folder that reads the
centre neuron of every studied layer at once (the ``activations`` job, :func:`extract_activations`).
The file it writes: :mod:`resstream.activations.store`; the top-k rule: :mod:`resstream.activations.topk`;
the exemplar grids drawn from it: :mod:`resstream.activations.exemplars`.

The author ran one full ImageNet pass per layer (18 of them) and held all 50,000 float images in RAM
(that is why their pass took hours).  Here every batch goes through ONE forward that stops after the deepest tapped block
(:func:`resstream.model.taps.block_taps`) and only the centre activations leave the batch, so memory is
bounded by the batch whatever the dataset size.  Nothing is random, so a resumed file holds the same
values as an uninterrupted one.

A full disk: before any work the pass checks that the device has room for the whole file
(uncompressed, :func:`resstream.activations.store.expected_bytes`), and before each block that it has
room for that block (:class:`resstream.activations.RowBlockWriter`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from resstream.activations import store
from resstream.activations.heap import limit_heap_growth
from resstream.activations.row_blocks import RowBlockWriter
from resstream.base.disk_space import DiskSpaceError, check_free_space
from resstream.data.dataset import DatasetError, ImageFolderDataset, scan_image_folder
from resstream.data.image_manifest import read_image_manifest
from resstream.model.blocks import TapRef, parse_layer
from resstream.model.device import resolve_device
from resstream.model.preprocessing import Preprocessing, for_arch
from resstream.model.taps import block_taps, center_activation
from resstream.model.walk import model_blocks
from resstream.model.weights import load_model_param

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TappedLayer:
    name: str
    ref: TapRef
    channels: int
    height: int
    width: int


def probe_layers(
    model: torch.nn.Module, blocks, layer_names: list[str], device: torch.device, size: int = 224
) -> list[TappedLayer]:
    """Channels and map size of every tapped layer, from one forward of a blank image (the model's
    own structure decides, e.g. a Bottleneck stage's input has fewer channels than its output)."""
    refs = [parse_layer(blocks, n) for n in layer_names]
    with torch.inference_mode():
        taps = block_taps(model, torch.zeros(1, 3, size, size, device=device), refs, blocks=blocks)
    return [TappedLayer(n, r, *taps[r].shape[1:4]) for n, r in zip(layer_names, refs)]


@dataclass
class _Pass:
    """What one run of the pass works with, once the listing, network and layers are known."""

    records: list
    net: torch.nn.Module
    blocks: list  # the network's block table, listed once (not per batch)
    identity: object
    device: torch.device
    layers: list[TappedLayer]
    fingerprint: dict
    preprocessing: Preprocessing  # how the arch reads an image (its pretrained_cfg's for a timm arch)


def extract_activations(
    out_path: str,
    *,
    model: dict,
    dataset: str,
    on_bad_image: str,
    layers: list[str],
    spatial_layers: list[str],
    topk: int,
    o_relu: str,
    batch_size: int,
    workers: int,
    log_every: int,
    device: str,
    gpus: int | None = None,
    images: str | None = None,
) -> str:
    """The dataset pass (the ``activations`` job): the centre neuron of every layer in ``layers``
    (and the full maps of ``spatial_layers``) for every image of the folder ``dataset``, written to
    ``out_path``; resumes a partial run.  ``model``: the rule's model param
    (:func:`resstream.model.weights.model_param`); ``batch_size``, ``workers``, ``log_every``, ``device``
    and ``gpus`` (what the job declared, :func:`resstream.model.device.resolve_device`) change how it
    runs, not what it writes.  ``images``: the folder's image manifest
    (:mod:`resstream.data.image_manifest`), whose listing the pass reads instead of listing the folder."""
    limit_heap_growth()
    run = _prepare(model, dataset, on_bad_image, layers, spatial_layers, o_relu, device, gpus, images)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    partial = out_path + store.PARTIAL_SUFFIX
    f, start = _open_partial(partial, out_path, run, spatial_layers, topk)
    if f is None:
        chunk_rows = min(batch_size, len(run.records))
        f = store.create_partial(
            partial,
            run.fingerprint,
            run.records,
            run.layers,
            spatial_layers,
            chunk_rows,
            _file_attrs(run, dataset, o_relu, spatial_layers),
        )
    else:
        chunk_rows = store.chunk_rows_of(f)
        _log_resume(partial, f, start, len(run.records), batch_size, chunk_rows)
    log.info(
        "%d images from %s, %d layers (%s), weights %s, device %s",
        len(run.records),
        dataset,
        len(run.layers),
        ", ".join(t.name for t in run.layers),
        run.identity.label,
        run.device,
    )
    with store.closed_even_when_full(f):
        if start < len(run.records):
            pictures = ImageFolderDataset(
                dataset, on_bad_image=on_bad_image, records=run.records, preprocessing=run.preprocessing
            )
            writer = RowBlockWriter(f, run.layers, spatial_layers, chunk_rows, start)
            _stream(writer, run, pictures, spatial_layers, start, batch_size, workers, log_every)
        store.finish(f, run.layers, chunk_rows, topk)
    store.publish(partial, out_path)
    log.info("wrote %s", out_path)
    return out_path


def _prepare(
    model: dict,
    dataset: str,
    on_bad_image: str,
    layers: list[str],
    spatial_layers: list[str],
    o_relu: str,
    device: str,
    gpus: int | None,
    images: str | None = None,
) -> _Pass:
    """The dataset listing, the network on its device, the tapped layers' shapes and the fingerprint
    a partial file must match."""
    if dataset is None:
        raise DatasetError(
            "dataset.path is not set. Fix: point it at an image folder (ImageNet val: class sub-folders)."
        )
    records = read_image_manifest(images).records if images else scan_image_folder(dataset)
    net, identity = load_model_param(model)
    run_on = resolve_device(device, gpus)
    net.to(run_on)
    blocks = model_blocks(net)
    prep = for_arch(model["arch"])
    tapped = probe_layers(net, blocks, layers, run_on, prep.crop_size)
    fingerprint = store.run_fingerprint(dataset, on_bad_image, o_relu, records, tapped, spatial_layers, identity)
    return _Pass(records, net, blocks, identity, run_on, tapped, fingerprint, prep)


def _open_partial(partial: str, out_path: str, run: _Pass, spatial_layers: list[str], topk: int):
    """``(file, first row to compute)``: the partial file to resume (None: start over, saying why),
    once the disk is known to have room for the rest."""
    f, why_not = store.resume_or_explain(partial, run.fingerprint)
    start = store.finished_rows(f) if f is not None else 0
    left = 1 - start / max(1, len(run.records))
    try:
        check_free_space(
            out_path,
            int(store.expected_bytes(len(run.records), run.layers, spatial_layers, topk) * left),
            f"the activations file {out_path} ({len(run.records) - start} images, {len(run.layers)} layers)",
        )
    except DiskSpaceError:
        if f is not None:
            f.close()
        raise
    if f is None and why_not:
        log.warning("not resuming %s: %s; starting over", partial, why_not)
    return f, start


def _file_attrs(run: _Pass, dataset: str, o_relu: str, spatial_layers: list[str]) -> dict:
    """The new file's attributes: what made it and how its values were read."""
    return {
        "weights": json.dumps(run.identity.as_dict(), sort_keys=True),
        "weights_label": run.identity.label,
        "dataset_root": str(dataset),
        "dataset_root_resolved": run.fingerprint["dataset_root"],
        "o_relu": o_relu,
        "layers": json.dumps([t.name for t in run.layers]),
        "spatial_layers": json.dumps(spatial_layers),
        "center_rule": "(H//2, W//2) of every channel",
        "transform": run.preprocessing.describe(),
        "preprocessing": json.dumps(run.preprocessing.as_dict(), sort_keys=True),
    }


def _log_resume(partial: str, f, start: int, n_images: int, batch_size: int, chunk_rows: int) -> None:
    log.info(
        "resuming %s after %d finished batches (%d/%d images)", partial, store.finished_batches(f), start, n_images
    )
    if start < n_images and batch_size != chunk_rows:
        log.info(
            "batch_size %d differs from the partial file's %d: rows are buffered into its blocks; "
            "values may differ from an uninterrupted run in the last float bits",
            batch_size,
            chunk_rows,
        )


def _worker_error(exc: DatasetError) -> DatasetError:
    """A DataLoader worker re-raises with its traceback in the message; keep the one line."""
    lines = [l for l in str(exc).splitlines() if "DatasetError: " in l]
    return DatasetError(lines[-1].split("DatasetError: ", 1)[1]) if lines else exc


def _format_eta(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _batch_rows(run: _Pass, x: torch.Tensor, ok: np.ndarray, spatial: set[str]) -> tuple[dict, dict]:
    """One batch's ``(centre [B, C] per layer, full maps [B, C, H, W] per spatial layer)``; a skipped
    image's rows are NaN (its zero tensor is no image)."""
    with torch.inference_mode():
        taps = block_taps(run.net, x.to(run.device, non_blocking=True), [t.ref for t in run.layers], blocks=run.blocks)
    bad = ~ok
    centre, maps = {}, {}
    for t in run.layers:
        a = taps[t.ref]
        # a copy: a view would keep the whole map alive until the block is written
        c = np.array(center_activation(a).float().cpu(), dtype=np.float32)
        c[bad] = np.nan
        centre[t.name] = c
        if t.name in spatial:
            m = a.to(torch.float16).cpu().numpy()
            m[bad] = np.nan
            maps[t.name] = m
    return centre, maps


def _stream(writer: RowBlockWriter, run: _Pass, dataset, spatial_layers, start, batch_size, workers, log_every):
    """Every image from row ``start`` on, batch by batch, into ``writer``; progress every
    ``log_every`` batches."""
    n = len(dataset)
    subset = torch.utils.data.Subset(dataset, range(start, n))
    loader = torch.utils.data.DataLoader(
        subset, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=run.device.type == "cuda"
    )
    spatial = set(spatial_layers)
    n_batches = math.ceil((n - start) / batch_size)
    t0 = time.perf_counter()
    done = 0
    try:
        for b, (x, index, ok) in enumerate(loader, start=1):
            ok = ok.numpy().astype(bool)
            centre, maps = _batch_rows(run, x, ok, spatial)
            writer.add(int(index[0]), ok, centre, maps)
            done += len(ok)
            if b == n_batches:
                writer.finish()  # the last, possibly short, block
            if b % log_every == 0 or b == n_batches:
                _log_progress(b, n_batches, writer.written_rows, n, done, n - start - done, time.perf_counter() - t0)
    except DatasetError as exc:
        raise _worker_error(exc) from None


def _log_progress(batch: int, n_batches: int, written: int, n: int, done: int, left: int, elapsed: float) -> None:
    rate = done / elapsed if elapsed > 0 else float("nan")
    # the images counted are those whose block reached the file, never buffered ones
    log.info(
        "batch %d/%d: %d/%d images written, %.1f img/s, ETA %s",
        batch,
        n_batches,
        written,
        n,
        rate,
        _format_eta(left / rate) if rate > 0 else "?",
    )


def activations_job(job, gpus: int | None = None) -> str:
    """Entry point of the ``activations`` job (its spec: :mod:`resstream.activations.jobs`): the pass
    over the images ``input.images`` lists, into ``output.h5``."""
    params, resources = job.params, job.resources
    return extract_activations(
        job.output.h5,
        model=params.model,
        dataset=params.dataset,
        on_bad_image=params.on_bad_image,
        layers=params.layers,
        spatial_layers=params.spatial_layers,
        topk=params.topk,
        o_relu=params.o_relu,
        batch_size=resources.batch_size,
        workers=resources.workers,
        log_every=resources.log_every,
        device=params.device,
        gpus=gpus,
        images=job.input.images,
    )
