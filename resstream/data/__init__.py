"""Image folders (no rule of their own: `make sample` and the activations stage read them): the demo's
verified 1,000-image sample, ImageNet's validation set in class folders, listing and reading images.
"""

from resstream.lazy_exports import lazy_exports

ENTRY_POINTS = {
    "fetch_sample": "sample",
    "prepare_val_folder": "imagenet_val",
    "scan_image_folder": "image_folder",
    "ImageFolderDataset": "dataset",
}
__all__ = sorted(ENTRY_POINTS)
__getattr__, __dir__ = lazy_exports(__name__, ENTRY_POINTS)
