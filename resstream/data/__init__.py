"""Image folders (no rule of their own: `make sample` and the activations stage read them): the demo's
verified 1,000-image sample, ImageNet's validation set in class folders, listing and reading images.
"""

from resstream.base.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__, sample="fetch_sample", imagenet_val="prepare_val_folder", image_folder="scan_image_folder",
    dataset="ImageFolderDataset"
)
