"""Image folders as the paper reads them (docs/method.md#imagenet-variant-a3): Resize(256) + CenterCrop(224) + ImageNet norm,
as a torch dataset (the listing and reading of images: :mod:`resstream.data.image_folder`).

Two layouts are accepted: ImageNet's class folders (``root/nXXXXXXXX/*.JPEG``, class ids are the
sorted folder order, as torchvision's ``ImageFolder``) or a flat folder of images (class id -1).
Grayscale, CMYK, palette and alpha images become RGB the way ``ImageFolder``'s loader does it.
An unreadable file is named by path, then skipped (returned with ``ok=False`` and a zero image, so
row indices stay stable) or fatal, per ``on_bad_image``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torchvision import transforms

from resstream.data.image_folder import (  # noqa: F401  (re-exported: the listing and reading of images)
    IMAGE_EXTENSIONS,
    DatasetError,
    ImageRecord,
    load_rgb,
    scan_image_folder,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

log = logging.getLogger(__name__)


def normalize_transform() -> transforms.Normalize:
    return transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)


def view_transform() -> transforms.Compose:
    """The 224-px view a unit sees, before normalisation (the exemplar grids use the same view
    without torch: :func:`resstream.data.image_folder.view_pixels`)."""
    return transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])


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
