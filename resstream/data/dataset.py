"""Image folders as the paper reads them (docs/method.md#imagenet-variant-a3): Resize(256) + CenterCrop(224) + ImageNet norm
(a timm arch: its pretrained_cfg's, :mod:`resstream.model.preprocessing`), as a torch dataset (the listing and reading of images: :mod:`resstream.data.image_folder`).

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

from resstream.model.preprocessing import TORCHVISION, Preprocessing

IMAGENET_MEAN = TORCHVISION.mean
IMAGENET_STD = TORCHVISION.std

log = logging.getLogger(__name__)


def normalize_transform(prep: Preprocessing = TORCHVISION) -> transforms.Normalize:
    return transforms.Normalize(prep.mean, prep.std)


def view_transform(prep: Preprocessing = TORCHVISION) -> transforms.Compose:
    """The view a unit sees, before normalisation: for torchvision archs Resize(256) + CenterCrop(224)
    (the exemplar grids use that view without torch: :func:`resstream.data.image_folder.view_pixels`);
    a timm arch's as timm's eval transform makes it from its pretrained_cfg."""
    size = (prep.resize_size, prep.resize_size) if prep.crop_mode == "squash" else prep.resize_size
    resize = transforms.Resize(size, interpolation=transforms.InterpolationMode(prep.interpolation))
    return transforms.Compose([resize, transforms.CenterCrop(prep.crop_size), transforms.ToTensor()])


class ImageFolderDataset(torch.utils.data.Dataset):
    """Items are ``(image [3,224,224] normalised, index, ok)``, read as ``preprocessing`` says."""

    def __init__(self, root, on_bad_image: str = "skip", normalize: bool = True, records=None,
                 preprocessing: Preprocessing = TORCHVISION):
        if on_bad_image not in ("skip", "fail"):
            raise ValueError("on_bad_image must be 'skip' or 'fail'")
        self.root = Path(root)
        self.records = records if records is not None else scan_image_folder(root)
        self.on_bad_image = on_bad_image
        self.crop_size = preprocessing.crop_size
        steps = [view_transform(preprocessing)]
        if normalize:
            steps.append(normalize_transform(preprocessing))
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
            return torch.zeros(3, self.crop_size, self.crop_size), rec.index, False
        return self.transform(img), rec.index, True
