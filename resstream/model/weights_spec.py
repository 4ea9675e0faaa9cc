"""The ``model.weights`` value and ``model.checkpoint`` mode, checked without reading any file.

A weights spec is one string:

* ``IMAGENET1K_V1`` (any torchvision enum member name): torchvision's pretrained weights through
  torch's hub cache; a connected machine downloads them once.
* a path to a local checkpoint (``.pth``): with ``model.checkpoint: torchvision`` (the default)
  checked against torchvision's published sha256; with ``model.checkpoint: any`` a checkpoint of
  one's own (fine-tuned, adversarially robust, ...) in the usual wrappings
  (:func:`resstream.model.checkpoint_files.unwrap_state_dict`), recorded by its sha256 and labelled
  "custom checkpoint".
* ``random:SEED``: ``torch.manual_seed(SEED)`` then ``<arch>(weights=None)``, so anyone can rebuild
  exactly the same random network.  Outputs made from these are marked as random everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from resstream.model import timm_models, timm_weights
from resstream.model.checkpoint_files import WeightsError
from resstream.model.structure import check_arch, weights_files

CHECKPOINT_MODES = ("torchvision", "any")
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".tar", ".ckpt")
# how a user asks for a checkpoint of their own, in each place that takes weights
ANY_CHECKPOINT_HINT = (
    'set model.checkpoint: any (resstream fv / activations: --checkpoint any; the Python API: checkpoint="any")'
)


def enum_url(arch: str, name: str) -> str:
    """The checkpoint URL of a member of the arch's torchvision weights enum (e.g. ResNet18_Weights)."""
    urls = weights_files(arch)
    try:
        return urls[name]
    except KeyError:
        names = ", ".join(urls)
        raise WeightsError(
            f"model.weights '{name}' is not a weights set of {arch}; torchvision offers: {names}. "
            f"Or give a checkpoint path, or random:SEED."
        ) from None


def is_checkpoint_path(weights: str) -> bool:
    """Whether a weights spec names a file (rather than a torchvision enum name or random:SEED)."""
    return os.sep in weights or weights.endswith(CHECKPOINT_SUFFIXES)


def checkpoint_file(weights: str) -> Path | None:
    """The checkpoint a weights spec names (it must exist), or None for an enum name."""
    if not is_checkpoint_path(weights):
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"model.weights checkpoint {path} does not exist. Fix: correct the path, or use "
            f"IMAGENET1K_V1 (torch hub cache) or random:SEED."
        )
    return path


def random_seed(weights: str) -> int | None:
    """The seed of a ``random:SEED`` spec, None for any other spec."""
    if not weights.startswith("random:"):
        return None
    try:
        return int(weights.split(":", 1)[1])
    except ValueError:
        raise WeightsError(f"model.weights '{weights}': random weights need an integer seed, e.g. random:0.") from None


def check_weights_spec(arch: str, weights: str, checkpoint: str = "torchvision") -> None:
    """What can be said of a weights spec without reading any file: a known arch, an integer random
    seed, an enum name torchvision offers for the arch, and ``checkpoint: any`` only with a file."""
    weights = str(weights)
    check_arch(arch)
    if checkpoint not in CHECKPOINT_MODES:
        raise WeightsError(f"model.checkpoint '{checkpoint}' unknown; one of {', '.join(CHECKPOINT_MODES)}.")
    path = is_checkpoint_path(weights)
    if timm_models.is_timm(arch):
        return timm_weights.check_spec(arch, weights, checkpoint, path, random_seed(weights))
    if checkpoint == "any" and not path:
        raise WeightsError(
            f"model.checkpoint: any is for a checkpoint file, but model.weights is '{weights}'. Fix: set "
            f"model.weights to the file's path, or model.checkpoint back to torchvision."
        )
    if random_seed(weights) is None and not path:
        enum_url(arch, weights)
