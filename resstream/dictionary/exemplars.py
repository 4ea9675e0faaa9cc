"""Exemplar pictures of dictionary features: per feature a grid of its top held-out images (the
224 px view the network saw, best first) and a grid of the patches around its peak cell (the
receptive field of the block's O at that cell, cut from the same view)."""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
from PIL import Image

from resstream.activations.exemplars import exemplar_grid_image
from resstream.data.image_folder import load_rgb, view_pixels
from resstream.model.blocks import role_tap
from resstream.model.preprocessing import Preprocessing
from resstream.model.receptive_field import cell_window

PATCH_TILE = 112  # every patch drawn at this size (nearest neighbour: the pixels stay visible)


def exemplar_png_names(feature: int) -> tuple[str, str]:
    """``(top images grid, patches grid)`` file names of a feature."""
    return f"feature{feature:05d}_top.png", f"feature{feature:05d}_patches.png"


def patch_box(net, blocks, block: str, o_relu: str, cell: list[int], size: int) -> list[int]:
    """``[y0, y1, x0, x1]``: the input window of cell ``(y, x)`` of the block's O map, in the view."""
    ref = role_tap(blocks, block, "O", o_relu)
    (y0, y1), (x0, x1) = (cell_window(net, blocks, ref, i, size) for i in cell)
    return [y0, y1, x0, x1]


def write_exemplar_grids(out_dir: str, features: list[dict], dataset: str, prep: Preprocessing, boxes) -> dict:
    """For each feature record of ``features.json`` (``top_images``: image, activation, cell), its
    two grids in ``out_dir``; ``boxes(cell) -> [y0, y1, x0, x1]``.  Returns ``{feature: [box per top
    image]}``."""

    @lru_cache(maxsize=256)
    def view(path: str) -> np.ndarray:
        return view_pixels(
            load_rgb(os.path.join(dataset, path)),
            prep.resize_size,
            prep.crop_size,
            prep.interpolation,
            prep.crop_mode == "squash",
        )

    out = {}
    for record in features:
        tops = record["top_images"]
        cut = [boxes(t["cell"]) for t in tops]
        views = [view(t["image"]) for t in tops]
        patches = [
            np.asarray(Image.fromarray(v[y0:y1, x0:x1]).resize((PATCH_TILE, PATCH_TILE), Image.Resampling.NEAREST))
            for v, (y0, y1, x0, x1) in zip(views, cut)
        ]
        top_name, patch_name = exemplar_png_names(record["feature"])
        Image.fromarray(exemplar_grid_image(views or [None])).save(os.path.join(out_dir, top_name))
        Image.fromarray(exemplar_grid_image(patches or [None], tile=PATCH_TILE)).save(os.path.join(out_dir, patch_name))
        out[record["feature"]] = cut
    return out
