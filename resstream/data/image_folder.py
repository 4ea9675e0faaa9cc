"""Image folders without torch: the listing of a dataset (class folders or flat, links followed,
cycles refused), reading one image as RGB, and the 224-px view a unit sees (Resize(256) +
CenterCrop(224), as torchvision does it on a PIL image) as an 8-bit picture.

Jobs that only read pictures (the exemplar grids) and Snakemake's own process (the pre-flight
check, the cluster budgets) use this module; :mod:`resstream.data.dataset` adds the torch dataset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from resstream.base.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
VIEW_RESIZE, VIEW_CROP = 256, 224


class DatasetError(UserError, RuntimeError):
    """A dataset that cannot be used; the message names the path and the fix."""


@dataclass(frozen=True)
class ImageRecord:
    index: int
    path: str  # relative to the dataset root
    class_id: int
    class_name: str


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def scan_image_folder(root: str | os.PathLike) -> list[ImageRecord]:
    """List the images of a class-folder or flat folder in a deterministic order.

    The one listing of a dataset: the pre-flight check and the dataset pass both call it.  Links
    are followed (class folders that are symlinks into a shared copy are common); a link that
    points back to a folder above it is refused, since following it would never end."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"dataset.path {root} does not exist or is not a folder. Fix: set dataset.path in your config to an "
            f"ImageNet-style validation folder (class sub-folders) or a flat folder of images."
        )
    top = os.path.realpath(root)
    class_dirs = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    records: list[ImageRecord] = []
    for class_id, cname in enumerate(class_dirs):
        for rel in _images_under(root, cname, (top,)):
            records.append(ImageRecord(len(records), rel, class_id, cname))
    for f in sorted(os.listdir(root)):
        if _is_image(f) and (root / f).is_file():
            records.append(ImageRecord(len(records), f, -1, ""))
    if not records:
        raise DatasetError(
            f"dataset.path {root} holds no image files ({', '.join(IMAGE_EXTENSIONS)}), neither in class "
            f"sub-folders nor flat. Fix: point dataset.path at a folder with images."
        )
    return records


def _images_under(root: Path, rel_dir: str, ancestors: tuple[str, ...]):
    """Image paths (relative to ``root``) under ``root/rel_dir``, links followed, in the order of a
    sorted top-down walk: a folder's own files first, then its sub-folders one by one.
    ``ancestors``: real paths of the folders above, to recognise a link cycle."""
    folder = root / rel_dir
    real = os.path.realpath(folder)
    if real in ancestors:
        raise DatasetError(
            f"dataset.path {root} has a link cycle: {folder} leads back to {real}, a folder above it. "
            f"Fix: remove or repoint that link."
        )
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise DatasetError(f"cannot list {folder} ({exc.strerror}). Fix: make it readable or remove it from dataset.path.") from None
    subdirs = []
    for entry in entries:
        if entry.is_dir():  # follows links
            subdirs.append(entry.name)
        elif _is_image(entry.name):
            yield os.path.join(rel_dir, entry.name)
    for name in subdirs:
        yield from _images_under(root, os.path.join(rel_dir, name), ancestors + (real,))


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Open an image as RGB; raises :class:`DatasetError` naming the file if it cannot be read."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                # Composite on black like a plain convert would; keep it explicit for clarity.
                return img.convert("RGBA").convert("RGB")
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"cannot read image {path}: {exc}. Fix: replace or remove the file, or set dataset.on_bad_image: skip") from None


RESAMPLING = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def view_pixels(img: Image.Image, resize: int = VIEW_RESIZE, crop: int = VIEW_CROP, interpolation: str = "bilinear",
                squash: bool = False) -> np.ndarray:
    """``[crop, crop, 3]`` uint8: the RGB image resized (``interpolation``) so its shorter side is
    ``resize`` (``squash``: both sides), then its centre ``crop`` x ``crop``, exactly as torchvision's
    ``Resize`` and ``CenterCrop`` treat a PIL image (:func:`resstream.data.dataset.view_transform`;
    tested equal).  Defaults: the paper's Resize(256) bilinear + CenterCrop(224)."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = resize if squash else int(resize * long / short)
    new_w, new_h = (resize, new_long) if w <= h else (new_long, resize)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), RESAMPLING[interpolation])
    top, left = int(round((new_h - crop) / 2.0)), int(round((new_w - crop) / 2.0))
    return np.asarray(img.crop((left, top, left + crop, top + crop)))
