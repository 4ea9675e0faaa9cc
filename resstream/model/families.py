"""The residual CNN families of torchvision resstream studies (timm's: :mod:`resstream.model.timm_models`): their architectures, where each
family's I, B and O are read (in words) and its classifier layer.  Importing this module imports no
torch: the Snakefile's parse and the refusals of an unknown arch need none.  Where a block class
keeps I, B and O in a built network: :mod:`resstream.model.adapters`.
"""

from __future__ import annotations

from resstream.base.errors import ConfigError
from resstream.model import timm_models

# Family -> the torchvision architectures resstream studies (each built by torchvision.models.<arch>).
FAMILY_ARCHS: dict[str, tuple[str, ...]] = {
    "ResNet": ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2", "wide_resnet101_2"),
    "ResNeXt": ("resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d"),
    "RegNet": tuple(
        f"regnet_{xy}_{s}"
        for xy, sizes in (
            ("x", ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")),
            ("y", ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf", "128gf")),
        )
        for s in sizes
    ),
    "ConvNeXt": ("convnext_tiny", "convnext_small", "convnext_base", "convnext_large"),
    "MobileNetV2": ("mobilenet_v2",),
    "MobileNetV3": ("mobilenet_v3_large", "mobilenet_v3_small"),
    "EfficientNet": tuple(f"efficientnet_b{i}" for i in range(8))
    + ("efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"),
}
ARCHS: tuple[str, ...] = tuple(a for archs in FAMILY_ARCHS.values() for a in archs)
# Where each family's I, B and O are read, in words (``resstream families``, docs/models.md).
SEMANTICS = {
    "ResNet": "BasicBlock/Bottleneck: B = bn2/bn3; I = downsample (.1) or the block input; ReLU after the sum (o_relu: pre|post)",
    "ResNeXt": "Bottleneck (grouped conv2): B = bn3; I = downsample (.1) or the block input; ReLU after the sum (o_relu: pre|post)",
    "RegNet": "ResBottleneckBlock: B = f.c (1x1 conv + BN; RegNetY: after squeeze-excitation); I = proj (.1) or the "
    "block input; ReLU after the sum (o_relu: pre|post)",
    "ConvNeXt": "CNBlock: B = stochastic_depth = layer_scale * block(x) (identity in eval); I = the block input "
    "(a stage's first block: the downsampling layer's output); nothing after the sum (o_relu: pre only)",
    "MobileNetV2": "InvertedResidual with use_res_connect: B = conv (ends in BN); I = the block input; nothing after "
    "the sum (o_relu: pre only); blocks without a sum are not studied",
    "MobileNetV3": "InvertedResidual with use_res_connect: B = block (ends in BN; squeeze-excitation inside some); I = the "
    "block input; nothing after the sum (o_relu: pre only); blocks without a sum are not studied",
    "EfficientNet": "MBConv / FusedMBConv with use_res_connect: B = block (ends in BN; FusedMBConv with expand ratio 1: "
    "its conv-BN-SiLU); I = the block input; nothing after the sum (o_relu: pre only); blocks without a "
    "sum are not studied",
    **timm_models.SEMANTICS,
}
# The 1000-way classifier layer (for checkpoints fine-tuned to another number of classes).
CLASSIFIER = {
    "ResNet": "fc",
    "ResNeXt": "fc",
    "RegNet": "fc",
    "ConvNeXt": "classifier.2",
    "MobileNetV2": "classifier.1",
    "MobileNetV3": "classifier.3",
    "EfficientNet": "classifier.1",
}


def arch_family(arch: str) -> str | None:
    if timm_models.is_timm(arch):
        try:
            return timm_models.family_of(arch)
        except ConfigError:
            return None
    for family, archs in FAMILY_ARCHS.items():
        if arch in archs:
            return family
    return None


def supported_families_line() -> str:
    """One line naming every supported family and its archs, for refusals."""

    def listed(archs):
        return ", ".join(archs) if len(archs) <= 3 else f"{archs[0]} ... {archs[-1]}, {len(archs)} archs"

    return (
        "; ".join(f"{family} ({listed(archs)})" for family, archs in FAMILY_ARCHS.items())
        + f"; timm models (model.arch: timm:NAME): {timm_models.supported_line()} (see: resstream families)"
    )
