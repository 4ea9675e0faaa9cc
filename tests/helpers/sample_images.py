"""A small ImageNet-like image folder made at test time, so no test needs the 1,000-image sample.

Layout as a prepared ImageNet validation folder (and the fetched demo sample): one class folder per
synset-like id, ``nXXXXXXXX/nXXXXXXXX_synthetic.JPEG``.  The pictures are smooth colour fields with
edges and noise (so channels respond differently), in the sizes and modes ImageNet has: landscape,
portrait, small, and every 17th picture grayscale.  Deterministic: the same seed gives the same bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLE_CLASSES = 200  # the sample_dir fixture's classes, one image each
SIZES = ((500, 375), (375, 500), (333, 500), (500, 333), (256, 256), (640, 480), (300, 225))


def class_name(i: int) -> str:
    return f"n{1440764 + 1117 * i:08d}"


def picture(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Blobs of colour from an upsampled coarse grid, a few hard edges and pixel noise."""
    coarse = rng.integers(0, 256, (rng.integers(3, 9), rng.integers(3, 9), 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.int64)
    for _ in range(rng.integers(1, 4)):  # a bar of another colour: edges for early layers
        x0, y0 = rng.integers(0, width - 20), rng.integers(0, height - 20)
        img[y0 : y0 + rng.integers(10, height // 2), x0 : x0 + rng.integers(10, width // 3)] = rng.integers(0, 256, 3)
    img += rng.integers(-12, 13, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_image_folder(root: str | os.PathLike, n_classes: int = 200, seed: int = 0) -> Path:
    """``n_classes`` class folders with one JPEG each under ``root`` (created); returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for i in range(n_classes):
        name = class_name(i)
        (root / name).mkdir(parents=True, exist_ok=True)
        width, height = SIZES[i % len(SIZES)]
        img = picture(rng, width, height)
        if i % 17 == 5:
            img = img.convert("L")
        img.save(root / name / f"{name}_synthetic.JPEG", quality=90)
    return root
