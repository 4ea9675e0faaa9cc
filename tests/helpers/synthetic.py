"""Fabricate the FV and dataset-activation outputs in the formats their stages write, for tests.

* :func:`write_fv_chunk`: ``results/fv/{layer}/{chunk}/unit{c:04d}.png`` + ``fv.h5``
  (channels, status, final_activation, seed, curve, image; attrs settings, weights, layer).
* :func:`write_activations`: ``results/activations/activations.h5`` with /layers, /images, /topk
  computed from REAL forwards of the given model over a few images of the sample folder (paths
  stored relative to it; the images are read, never copied), plus exemplar grids.
"""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import torch
from PIL import Image

from helpers.configs import tiny_config
from resstream.activations.store import FORMAT
from resstream.analysis.measure import center_responses
from resstream.base.paths import activations_h5, exemplar_grid, fv_chunk_dir, fv_chunk_h5, fv_png
from resstream.data.dataset import ImageFolderDataset, scan_image_folder, view_transform
from resstream.workflow.config import validate_config
from resstream.workflow.plan import StudyPlan


def small_config(results, dataset, blocks=("1.1", "2.0", "2.1"), channels=(0, 1, 2), **analysis) -> dict:
    return validate_config(
        tiny_config(
            results,
            dataset,
            demo=True,
            study={"blocks": list(blocks), "channels": list(channels)},
            fv={"channels_per_job": 2},
            analysis=analysis,
        )
    )


def fabricated_study(
    results, dataset, random_model, blocks, channels, n_images: int, grids: bool = True, status=None, bad: tuple = ()
) -> tuple[dict, StudyPlan]:
    """The small config of ``blocks`` and ``channels`` with its FV chunks fabricated
    (:func:`write_study_fvs`) and its dataset activations from real forwards of ``n_images`` sample
    images (:func:`write_activations`)."""
    model, identity = random_model
    config = small_config(results, dataset, blocks=blocks, channels=channels)
    study = write_study_fvs(config, identity.as_dict(), status=status)
    write_activations(config, model, identity, n_images=n_images, bad=bad, grids=grids)
    return config, study


def smooth_image(rng: np.random.Generator, size: int = 224) -> np.ndarray:
    """An 8-bit RGB picture with some structure (blobs), so activations vary between channels."""
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((size, size), Image.BILINEAR)
    noise = rng.integers(-20, 21, (size, size, 3))
    return np.clip(np.asarray(img, dtype=np.int64) + noise, 0, 255).astype(np.uint8)


def write_fv_chunk(
    results, layer: str, chunk: str, channels, weights: dict, seed: int = 0, status=None, steps: int = 4
):
    """One FV chunk folder; ``status`` maps channel -> 'ok' | 'dead' | 'nan' (default all ok)."""
    rng = np.random.default_rng(seed)
    out = fv_chunk_dir(str(results), layer, chunk)
    os.makedirs(out, exist_ok=True)
    images = []
    for c in channels:
        arr = smooth_image(rng)
        Image.fromarray(arr).save(fv_png(str(results), layer, chunk, c))
        images.append(arr.transpose(2, 0, 1).astype(np.float32) / 255)
    status = status or {}
    with h5py.File(fv_chunk_h5(str(results), layer, chunk), "w") as f:
        f["channels"] = np.asarray(channels, dtype=np.int64)
        f["status"] = np.asarray([status.get(c, "ok") for c in channels], dtype=object).astype("S")
        f["final_activation"] = rng.normal(size=len(channels)).astype(np.float32)
        f["seed"] = np.arange(len(channels), dtype=np.int64)
        f["curve"] = rng.normal(size=(len(channels), steps)).astype(np.float32)
        f["image"] = np.stack(images)
        f.attrs["layer"] = layer
        f.attrs["settings"] = json.dumps({"steps": steps})
        f.attrs["weights"] = json.dumps(weights)
    return out


def write_study_fvs(config: dict, weights: dict, status=None) -> StudyPlan:
    """FV chunk folders of every layer of the study; ``status`` = {(layer, channel): status}."""
    study = StudyPlan(config)
    status = status or {}
    for k, layer in enumerate(study.layers):
        for chunk in study.chunks(layer):
            st = {c: status[(layer, c)] for c in chunk.channels if (layer, c) in status}
            write_fv_chunk(
                config["results"],
                layer,
                chunk.name,
                list(chunk.channels),
                weights,
                seed=100 * k + chunk.start,
                status=st,
            )
    return study


def topk_desc(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(index [C, k], value [C, k])``: value descending, ties higher index first (the stage's rule)."""
    n = values.shape[0]
    order = np.lexsort((-np.arange(n)[:, None].repeat(values.shape[1], 1), -values), axis=0)[:k]
    return order.T.astype(np.int64), np.take_along_axis(values, order, axis=0).T


def write_activations(
    config: dict, model, identity, n_images: int = 16, k: int = 9, bad: tuple = (), grids: bool = True
) -> str:
    """activations.h5 over the first ``n_images`` images of the dataset folder (real forwards)."""
    study = StudyPlan(config)
    root = config["dataset"]["path"]
    listed = scan_image_folder(root)
    records = listed[:: max(1, len(listed) // n_images)][:n_images]
    records = [type(r)(i, r.path, r.class_id, r.class_name) for i, r in enumerate(records)]
    ds = ImageFolderDataset(root, records=records)
    x = torch.stack([ds[i][0] for i in range(len(records))])
    layers = study.activation_layers()
    refs = {name: study.layer_ref(name) for name in layers}
    values = center_responses(model, x, refs, study.blocks)
    path = activations_h5(config["results"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ok = np.array([i not in bad for i in range(len(records))])
    str_dtype = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as f:
        f.create_dataset("images/path", data=np.array([r.path for r in records], dtype=object), dtype=str_dtype)
        f["images/class_id"] = np.array([r.class_id for r in records], dtype=np.int64)
        f["images/ok"] = ok
        for name in layers:
            v = values[name].astype(np.float32)
            v[~ok] = np.nan
            f[f"layers/{name}"] = v
            filled = np.where(np.isnan(v), -np.inf, v)
            index, value = topk_desc(filled, k)
            f[f"topk/{name}/index"] = index
            f[f"topk/{name}/value"] = value.astype(np.float32)
        f.attrs["weights"] = json.dumps(identity.as_dict())
        f.attrs["topk"] = k
        f.attrs["dataset_root"] = str(root)
        f.attrs["dataset_root_resolved"] = os.path.realpath(root)  # where the measurements read the images
        f.attrs["format"], f.attrs["complete"] = FORMAT, True  # readers refuse files not marked complete
    if grids:
        view = view_transform()
        tiles_by_index = {}

        def tile(i):  # a 56-px thumbnail of image i (each image decoded once)
            if i not in tiles_by_index:
                img = Image.open(os.path.join(root, records[i].path)).convert("RGB")
                tiles_by_index[i] = (view(img) * 255).byte().permute(1, 2, 0).numpy()[::4, ::4]
            return tiles_by_index[i]

        with h5py.File(path, "r") as f:
            for name in study.layers:
                for c in study.layer_channels(name):
                    tiles = [tile(int(i)) for i in f[f"topk/{name}/index"][c]]
                    rows = [np.concatenate(tiles[r * 3 : r * 3 + 3], axis=1) for r in range(3)]
                    out = exemplar_grid(config["results"], name, c)
                    os.makedirs(os.path.dirname(out), exist_ok=True)
                    Image.fromarray(np.concatenate(rows, axis=0)).save(out)
    return path
