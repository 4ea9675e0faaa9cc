"""Exemplar grids (docs/method.md#imagenet-variant-a3): per studied unit a 3 x 3 grid of its top-9 dataset images, best first,
and per layer ``exemplars.csv`` listing them; one job per layer.  No torch: the 224-px views are
made with PIL exactly as torchvision makes them (:func:`resstream.data.image_folder.view_pixels`)."""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

from resstream.activations import store
from resstream.base.errors import UserError
from resstream.base.outputs import partial_dir, publish_dir, remove_stale_partials
from resstream.base.paths import EXEMPLAR_LIST, unit_png_name
from resstream.data.image_folder import load_rgb, view_pixels
from resstream.data.image_manifest import manifest_folder
from resstream.model.preprocessing import for_arch

log = logging.getLogger("resstream.activations.exemplars")

GRID_COLUMNS = 3
GRID_PADDING = 2  # pixels between tiles (and around them)


def exemplar_grid_image(
    tiles: list[np.ndarray | None], columns: int = GRID_COLUMNS, tile: int = 224, padding: int = GRID_PADDING
) -> np.ndarray:
    """Tiles (``[224, 224, 3]`` uint8, ``None`` = blank) in rows of ``columns``, best first."""
    rows = math.ceil(len(tiles) / columns)
    step = tile + padding
    grid = np.full((padding + rows * step, padding + columns * step, 3), 255, dtype=np.uint8)
    for i, t in enumerate(tiles):
        y, x = padding + (i // columns) * step, padding + (i % columns) * step
        grid[y : y + tile, x : x + tile] = 0 if t is None else t
    return grid


def write_exemplar_grids(
    h5_path: str, layer: str, channels: list[int], out_dir: str, threads: int = 1, images: str | None = None
) -> int:
    """The ``exemplar_grids`` job of one layer: a grid PNG of the top-k views of each of ``channels``
    (``unit{c:04d}.png``) and ``exemplars.csv`` listing their images, in the folder ``out_dir``
    (built under a temporary name and renamed into place when complete).  ``images``: the dataset's
    image manifest, whose folder the images are opened from (else the one the file records)."""
    import pandas as pd
    from PIL import Image

    from resstream.base.tables import write_table

    with store.open_activations(h5_path) as f:
        root = Path(store.dataset_root(f))
        paths = store.image_paths(f)
        top_index, top_value = store.topk_index(f, layer)[channels], store.topk_value(f, layer)[channels]
        weights = store.weights_identity(f)
    folder = Path(manifest_folder(images, paths, h5_path)) if images else root
    prep = for_arch(weights["arch"])
    remove_stale_partials(out_dir)
    tmp = partial_dir(out_dir)

    @lru_cache(maxsize=512)  # top images repeat across units; 512 views = 77 MB of uint8
    def view(row: int) -> np.ndarray:  # as the dataset pass read the image (the arch's preprocessing)
        return view_pixels(
            load_rgb(folder / paths[row]),
            prep.resize_size,
            prep.crop_size,
            prep.interpolation,
            prep.crop_mode == "squash",
        )

    def draw(job):
        c, idx = job
        grid = exemplar_grid_image([view(int(i)) if i >= 0 else None for i in idx])
        # zlib level 1: 3x faster than PIL's default 6 for 20 % more bytes (thousands of grids)
        Image.fromarray(grid).save(os.path.join(tmp, unit_png_name(c)), compress_level=1)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for _ in pool.map(draw, zip(channels, top_index)):
            pass
    rows = [
        {
            "layer": layer,
            "channel": c,
            "rank": rank,
            "image_index": int(i),
            "path": paths[i] if i >= 0 else "",
            "activation": float(v),
        }
        for c, idx_row, val_row in zip(channels, top_index, top_value)
        for rank, (i, v) in enumerate(zip(idx_row, val_row))
    ]
    columns = ["layer", "channel", "rank", "image_index", "path", "activation"]
    meta = {
        "weights": weights,
        "activations": h5_path,
        "dataset_root": str(root),
        "rank": "0 = the unit's highest activation; image_index = row of activations.h5 /images (-1: none)",
    }
    write_table(pd.DataFrame(rows, columns=columns), os.path.join(tmp, EXEMPLAR_LIST), meta)
    publish_dir(
        tmp,
        out_dir,
        UserError(f"{out_dir} already holds exemplar grids; delete it (or let snakemake rerun the job) to redraw them"),
    )
    log.info("wrote %d exemplar grids of %s in %s", len(channels), layer, out_dir)
    return len(channels)


def exemplar_grids_job(job) -> int:
    """Entry point of an ``exemplar_grids`` job (its spec: :mod:`resstream.activations.jobs`): one
    layer's grids into ``output.folder``."""
    return write_exemplar_grids(
        job.input.h5, job.wildcards.layer, job.params.channels, job.output.folder, job.threads, images=job.input.images
    )
