"""Image folders as the paper reads them (spec §8): Resize(256) + CenterCrop(224) + ImageNet norm.

Two layouts are accepted: ImageNet's class folders (``root/nXXXXXXXX/*.JPEG``, class ids are the
sorted folder order, as torchvision's ``ImageFolder``) or a flat folder of images (class id -1).
Grayscale, CMYK, palette and alpha images become RGB the way ``ImageFolder``'s loader does it.
An unreadable file is named by path, then skipped (returned with ``ok=False`` and a zero image, so
row indices stay stable) or fatal, per ``on_bad_image``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision import transforms

from .errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

log = logging.getLogger(__name__)


class DatasetError(UserError, RuntimeError):
    """A dataset that cannot be used; the message names the path and the fix."""


@dataclass(frozen=True)
class ImageRecord:
    index: int
    path: str  # relative to the dataset root
    class_id: int
    class_name: str


def normalize_transform() -> transforms.Normalize:
    return transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)


def view_transform() -> transforms.Compose:
    """The 224-px view a unit sees, before normalisation (used for exemplar grids too)."""
    return transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])


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


class ImageFolderDataset(torch.utils.data.Dataset):
    """Items are ``(image [3,224,224] normalised, index, ok)``."""

    def __init__(self, root, on_bad_image: str = "skip", normalize: bool = True, records=None):
        if on_bad_image not in ("skip", "fail"):
            raise ValueError("on_bad_image must be 'skip' or 'fail'")
        self.root = Path(root)
        self.records = records if records is not None else scan_image_folder(root)
        self.on_bad_image = on_bad_image
        steps = [view_transform()]
        if normalize:
            steps.append(normalize_transform())
        self.transform = transforms.Compose(steps)

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        rec = self.records[i]
        try:
            img = load_rgb(self.root / rec.path)
        except DatasetError as exc:
            if self.on_bad_image == "fail":
                raise
            log.warning("skipping unreadable image %s (%s)", self.root / rec.path, exc)
            return torch.zeros(3, 224, 224), rec.index, False
        return self.transform(img), rec.index, True
