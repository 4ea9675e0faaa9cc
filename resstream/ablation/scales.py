"""The image scales of the lesion study, as PIL pipelines (the follow-up paper's scale-robustness
test, arXiv 2504.16290):

* scale 1: Resize 256, CenterCrop 224 (the plain ImageNet view);
* scale-up s > 1: Resize 256, CenterCrop int(224·(2−s)), Resize 224: the object fills more of the view;
* scale-down s < 1: the plain view resized to 224·s rounded up to an even size, then padded back
  to 224 on every side with a grey level ``fill`` (0 black, 127 grey) before normalisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torchvision import transforms

from resstream.base.errors import UserError
from resstream.data.dataset import normalize_transform
from resstream.data.image_folder import VIEW_CROP, VIEW_RESIZE


class ScaleError(UserError, ValueError):
    """A scale that cannot be made; the message names it and the allowed range."""


@dataclass(frozen=True)
class Scale:
    """One view of the images: ``factor`` (1: unscaled) and, for a scale-down, the pad ``fill``."""

    factor: float
    fill: int | None = None

    @property
    def label(self) -> str:
        return f"{self.factor:g}" if self.fill is None else f"{self.factor:g}/fill{self.fill}"


def scaled_down_size(factor: float) -> int:
    """224·s rounded up to an even number, so the padding is the same on both sides."""
    return 2 * math.ceil(round(VIEW_CROP * factor, 6) / 2)


def scale_steps(scale: Scale) -> list:
    """The PIL steps of one scale, before ToTensor."""
    s = scale.factor
    if not 0 < s < 2:
        raise ScaleError(f"ablation scale {s} is outside (0, 2); use 1 for unscaled, 1 < s < 2 up, 0 < s < 1 down")
    if s <= 1 and scale.fill is None and s != 1:
        raise ScaleError(f"ablation scale-down {s} needs a pad fill; set ablation.down_fills (0 black, 127 grey)")
    if s > 1:
        return [
            transforms.Resize(VIEW_RESIZE),
            transforms.CenterCrop(int(VIEW_CROP * (2 - s))),
            transforms.Resize(VIEW_CROP),
        ]
    steps = [transforms.Resize(VIEW_RESIZE), transforms.CenterCrop(VIEW_CROP)]
    if s < 1:
        size = scaled_down_size(s)
        steps += [transforms.Resize(size), transforms.Pad((VIEW_CROP - size) // 2, fill=scale.fill)]
    return steps


def scale_transform(scale: Scale) -> transforms.Compose:
    """PIL image -> normalised ``[3, 224, 224]`` tensor at ``scale``."""
    return transforms.Compose(scale_steps(scale) + [transforms.ToTensor(), normalize_transform()])


def study_scales(factors, down_fills) -> list[Scale]:
    """The scales of a config: each factor < 1 once per fill, the others once, in the given order."""
    out = []
    for s in factors:
        out += [Scale(float(s), int(f)) for f in down_fills] if s < 1 else [Scale(float(s))]
    return out
