"""How a model reads an image: resize, centre crop, mean and std, resolved once per arch.

torchvision archs read images the paper's way (Resize(256) bilinear, CenterCrop(224), ImageNet
mean/std).  A ``timm:NAME[.TAG]`` arch reads them its tag's way: mean, std, interpolation,
crop_pct and crop_mode of its ``pretrained_cfg`` (recorded in the timm tables, so planning needs
neither torch nor timm).  The crop stays the study's 224 px for every model: the centre neuron,
the FV image and the scale transforms S/S^-1 are defined on it, so a tag trained at another
input_size is read at 224 with its own resize ratio (shorter side ``floor(224 / crop_pct)``);
its trained size and timm's evaluation size (``test_input_size``) are recorded beside.  No torch here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# The study's crop (the paper's CenterCrop(224)): the FV image and the centre neuron live on it.
STUDY_CROP = 224
CROP_MODES = ("center", "squash")


@dataclass(frozen=True)
class Preprocessing:
    """One model's image preprocessing: ``Resize`` (shorter side, or both sides for crop_mode
    'squash') to ``resize_size`` with ``interpolation``, ``CenterCrop(crop_size)``, ``ToTensor``,
    ``Normalize(mean, std)``."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str  # 'bilinear', 'bicubic' or 'nearest'
    crop_pct: float
    crop_mode: str
    trained_input_size: int  # the pretrained_cfg's input_size (recorded; the crop is STUDY_CROP)
    # the pretrained_cfg's test_input_size, where timm evaluates the tag at a larger size than it was
    # trained at (resnet50.a1_in1k: 288); recorded and said, the crop stays STUDY_CROP
    test_input_size: int | None = None
    crop_size: int = STUDY_CROP

    @property
    def resize_size(self) -> int:
        # timm's eval transform: floor(size / crop_pct); 224 / 0.875 = 256, torchvision's Resize(256)
        return math.floor(self.crop_size / self.crop_pct)

    def as_dict(self) -> dict:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std), "resize_size": self.resize_size}

    def describe(self) -> str:
        """``Resize(256, bilinear), CenterCrop(224), mean [...], std [...]``: what is applied."""
        resize = f"({self.resize_size}, {self.resize_size})" if self.crop_mode == "squash" else str(self.resize_size)
        return (
            f"Resize({resize}, {self.interpolation}) antialiased, CenterCrop({self.crop_size}), ToTensor, "
            f"Normalize(mean {_numbers(self.mean)}, std {_numbers(self.std)})"
        )


def _numbers(values) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


TORCHVISION = Preprocessing(
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    interpolation="bilinear",
    crop_pct=0.875,
    crop_mode="center",
    trained_input_size=STUDY_CROP,
)


def for_arch(arch: str) -> Preprocessing:
    """The preprocessing an arch's images get: torchvision's, or the timm tag's ``pretrained_cfg``
    (a key the cfg lacks keeps torchvision's value)."""
    from resstream.model import timm_models

    if not timm_models.is_timm(arch):
        return TORCHVISION
    cfg = timm_models.preprocessing(arch)
    mode = cfg.get("crop_mode") or TORCHVISION.crop_mode
    if mode not in CROP_MODES:
        raise timm_models.TimmArchError(
            f"model.arch '{arch}': its pretrained_cfg's crop_mode '{mode}' (pad to keep the whole image) is not "
            f"supported; fix: choose a tag with crop_mode {' or '.join(CROP_MODES)}"
        )
    return Preprocessing(
        mean=tuple(cfg.get("mean", TORCHVISION.mean)),
        std=tuple(cfg.get("std", TORCHVISION.std)),
        interpolation=cfg.get("interpolation") or TORCHVISION.interpolation,
        crop_pct=float(cfg.get("crop_pct") or TORCHVISION.crop_pct),
        crop_mode=mode,
        trained_input_size=int(cfg.get("input_size", [3, STUDY_CROP])[-1]),
        test_input_size=int(cfg["test_input_size"][-1]) if cfg.get("test_input_size") else None,
    )


def applied_line(arch: str) -> str:
    """One line saying how the arch's images are read (and, for a tag trained at another size, at
    which size)."""
    from resstream.model import timm_models

    prep = for_arch(arch)
    if timm_models.is_timm(arch):  # name the tag whose pretrained_cfg it is
        arch = f"{timm_models.PREFIX}{timm_models.split_name(arch)[0]}.{timm_models.resolved_tag(arch)}"
    line = f"{arch} reads images with its pretrained_cfg's preprocessing: {prep.describe()}"
    if prep.trained_input_size != prep.crop_size:
        line += (
            f"; it was trained at {prep.trained_input_size} px, the study crops {prep.crop_size} px "
            f"(the centre neuron, FV image and scale transforms are defined there)"
        )
    if prep.test_input_size not in (None, prep.crop_size):
        line += (
            f"; timm evaluates it at {prep.test_input_size} px (its test_input_size), the study at {prep.crop_size} px"
        )
    return line
