"""timm models (``model.arch: timm:NAME``): their families, recorded block tables and preprocessing.

``NAME`` is a timm model name with an optional pretrained tag, ``resnet50.a1_in1k``; without a tag
timm's default tag is meant.  Importing this module imports neither torch nor timm: the tested
models' block tables, map sizes and the ``pretrained_cfg`` of each tag are recorded in
``timm_tables.json`` (``make arch-tables``, ``python -m resstream.model.timm_models``).  A timm model
of a supported family that is not recorded is walked live (that imports timm and torch).  Where a
timm block keeps its I, B and O: :mod:`resstream.model.timm_adapters`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import astuple
from importlib.metadata import version
from pathlib import Path

from resstream.base.errors import ConfigError

PREFIX = "timm:"
TABLES = Path(__file__).with_name("timm_tables.json")
RECORDED_INPUT_SIZE = 224

# Family -> the timm modules (timm.models.<module>) whose models are built from supported blocks.
FAMILY_MODULES: dict[str, tuple[str, ...]] = {
    "timm ResNet": ("resnet",),
    "timm ResNetV2": ("resnetv2",),
    "timm ConvNeXt": ("convnext",),
    "timm RegNet": ("regnet",),
    "timm EfficientNet/MobileNet": ("efficientnet", "mobilenetv3"),
    "timm Res2Net": ("res2net",),
    "timm ResNeSt": ("resnest",),
    "timm CSPNet/DarkNet": ("cspnet",),
    "timm ByobNet": ("byobnet",),
}
# Family -> the models resstream records and tests (tests/model/test_timm.py), first = the example.
TESTED_MODELS: dict[str, tuple[str, ...]] = {
    "timm ResNet": ("resnet18", "resnet50", "seresnext26d_32x4d", "resnetaa34d"),
    "timm ResNetV2": ("resnetv2_50x1_bit", "resnetv2_18", "resnetv2_50"),
    "timm ConvNeXt": ("convnext_tiny", "convnext_atto"),
    "timm RegNet": ("regnety_008", "regnetx_002", "regnety_002"),
    "timm EfficientNet/MobileNet": (
        "efficientnet_b0",
        "mobilenetv3_large_100",
        "mobilenetv3_small_050",
        "efficientnetv2_rw_t",
        "mobilenetv4_conv_small",
    ),
    "timm Res2Net": ("res2net50_26w_4s",),
    "timm ResNeSt": ("resnest14d",),
    "timm CSPNet/DarkNet": ("cspresnet50", "cspdarknet53", "cs3darknet_s", "cs3edgenet_x", "darknet17"),
    "timm ByobNet": ("gernet_s", "resnet51q", "regnetz_b16", "test_byobnet"),
}
SEMANTICS = {
    "timm ResNet": "BasicBlock/Bottleneck (se, drop_path, anti-aliasing, avg_down): B = drop_path if built "
    "(drop_path_rate > 0), else se, else bn2/bn3; I = downsample or the block input; ReLU after the sum",
    "timm ResNetV2": "PreActBasic/PreActBottleneck: B = drop_path (conv2/conv3 out); I = downsample (of the "
    "pre-activated input) or the block input; nothing after the sum. Bottleneck (preact=False): "
    "B = drop_path (norm3 out); ReLU after the sum",
    "timm ConvNeXt": "ConvNeXtBlock: B = drop_path = gamma * mlp(norm(conv_dw(x))); I = the block input (a stage's "
    "first block: the stage's downsample output); nothing after the sum",
    "timm RegNet": "Bottleneck (not PreBottleneck): B = drop_path (conv3 out, after se in RegNetY); I = downsample (a projection) or "
    "the block input; ReLU after the sum",
    "timm EfficientNet/MobileNet": "ConvBnAct/DepthwiseSeparableConv/InvertedResidual/EdgeResidual/"
    "UniversalInvertedResidual with has_skip: B = drop_path (ends in BN); I = the "
    "block input; nothing after the sum; blocks without a sum are not studied",
    "timm Res2Net": "Bottle2neck: B = drop_path if built, else se, else bn3; I = downsample or the block input; "
    "ReLU after the sum",
    "timm ResNeSt": "ResNestBottleneck: B = bn3 (its drop_path acts on the block input, not the branch); I = "
    "downsample or the block input; ReLU after the sum",
    "timm CSPNet/DarkNet": "BottleneckBlock/DarkBlock/EdgeBlock inside a stage: B = drop_path; I = the block input (a "
    "cross stage's first block: half of conv_exp's output, the layer named after conv_exp); "
    "BottleneckBlock: its act3 after the sum, the others nothing",
    "timm ByobNet": "BasicBlock/BottleneckBlock/DarkBlock/EdgeBlock with a shortcut: B = drop_path; I = shortcut "
    "(a projection) or the block input; the block's act after the sum, nothing for linear_out blocks; "
    "blocks without a shortcut have no sum (not studied)",
}
# timm modules and block classes that have residual sums the study cannot read, and why.
REFUSED_MODULES = {
    "dla": "whose Tree feeds each block's skip path in from outside the block and merges blocks by concatenation "
    "(Root), so a block's I is no tap of one residual stream",
}
REFUSED_BLOCKS = {
    "RepVggBlock": "whose sum (a BN of the input plus two conv branches) exists only in the training form and is "
    "folded into one conv without a sum in the deployed form",
    "MobileOneBlock": "whose sum (a BN of the input plus conv branches) exists only in the training form and is "
    "folded into one conv without a sum in the deployed form",
    "PreBottleneck": "whose sum adds B to norm1 of the block input rather than to the input, so O != I + B "
    "for the stream the blocks pass on",
}


class TimmArchError(ConfigError):
    """A timm model resstream cannot study."""


def is_timm(arch: str) -> bool:
    return str(arch).startswith(PREFIX)


def split_name(arch: str) -> tuple[str, str | None]:
    """``timm:resnet50.a1_in1k`` -> ``("resnet50", "a1_in1k")``; no tag -> ``(name, None)``."""
    name, _, tag = arch[len(PREFIX) :].partition(".")
    return name, tag or None


def supported_line() -> str:
    return "; ".join(f"{family} (e.g. timm:{models[0]})" for family, models in TESTED_MODELS.items())


# -- recorded ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _recorded_file() -> dict:
    """The recorded tables, or {} when recorded under another timm (or another torchvision)."""
    if not TABLES.exists():
        return {}
    tables = json.loads(TABLES.read_text())
    from resstream.model.recorded_tables import BLOCK_FIELDS, torchvision_release

    same = (tables["timm"], tables["torchvision"], tables["block_fields"]) == (
        _installed_timm(),
        torchvision_release(),
        BLOCK_FIELDS,
    )
    return tables if same else {}


def _installed_timm() -> str | None:
    try:
        return version("timm")
    except Exception:  # PackageNotFoundError: the tables cannot be trusted and timm cannot run
        return None


def recorded(name: str) -> dict | None:
    """The recorded table of a timm model name (without tag), None when not recorded."""
    return _recorded_file().get("models", {}).get(name)


def family_of(arch: str) -> str:
    """The family of a ``timm:NAME`` arch; a model outside the supported families is refused."""
    name, tag = split_name(arch)
    table = recorded(name)
    module = table["module"] if table is not None else _live_module(arch, name)
    if module in REFUSED_MODULES:
        raise TimmArchError(
            f"model.arch '{arch}' is a timm model of timm.models.{module}, {REFUSED_MODULES[module]}. "
            f"Fix: choose a timm model of a supported family: {supported_line()} (see: resstream families)"
        )
    for family, modules in FAMILY_MODULES.items():
        if module in modules:
            if table is None:
                _check_blocks(arch, name)
            _check_tag(arch, name, tag, table)
            return family
    raise TimmArchError(
        f"model.arch '{arch}' is a timm model without residual blocks of a supported family "
        f"(timm.models.{module}). Fix: choose a timm model of a supported family: {supported_line()} "
        f"(see: resstream families)"
    )


def _check_tag(arch: str, name: str, tag: str | None, table: dict | None) -> None:
    if tag is None or table is None or tag in table["pretrained_cfgs"]:
        return
    raise TimmArchError(
        f"model.arch '{arch}': timm has no pretrained tag '{tag}' for {name}. Fix: use one of "
        f"{', '.join(table['pretrained_cfgs'])}, or no tag (timm's default, {table['default_tag']})."
    )


def _check_blocks(arch: str, name: str) -> None:
    """Refuse a model of a supported timm module built from a block class the study cannot read
    (recorded models are all readable, so this runs only for a model walked live)."""
    refused = sorted(REFUSED_BLOCKS.keys() & _module_classes(name))
    if refused:
        raise TimmArchError(
            f"model.arch '{arch}' is a timm model with {refused[0]}s, {REFUSED_BLOCKS[refused[0]]}. "
            f"Fix: choose a timm model of a supported family: {supported_line()} (see: resstream families)"
        )


@functools.lru_cache(maxsize=8)
def _module_classes(name: str) -> frozenset[str]:
    """The class names of every module of the model (built on meta once per name)."""
    return frozenset(type(m).__name__ for m in build_on_meta(name).modules())


def _live_module(arch: str, name: str) -> str:
    import timm

    if not timm.is_model(name):
        raise TimmArchError(
            f"model.arch '{arch}': timm {_installed_timm()} has no model '{name}'. Fix: choose a "
            f"timm model of a supported family: {supported_line()} (see: timm.list_models())"
        )
    return timm.models.model_entrypoint(name).__module__.rpartition(".")[2]


def resolved_tag(arch: str) -> str | None:
    """The pretrained tag an arch means: its own, else timm's default for the model."""
    name, tag = split_name(arch)
    table = recorded(name) or live_table(name)
    return tag or table["default_tag"]


def preprocessing(arch: str) -> dict:
    """The ``pretrained_cfg`` preprocessing of the arch's tag: mean, std, input_size, interpolation,
    crop_pct, crop_mode (and hf_hub_id, where its weights come from)."""
    name, _ = split_name(arch)
    table = recorded(name) or live_table(name)
    return dict(table["pretrained_cfgs"].get(resolved_tag(arch)) or {})


def structure(arch: str):
    from resstream.model.blocks import BlockInfo
    from resstream.model.recorded_tables import BLOCK_FIELDS

    name, _ = split_name(arch)
    table = recorded(name) or live_table(name)
    return tuple(BlockInfo(**dict(zip(BLOCK_FIELDS, row))) for row in table["blocks"])


def map_sizes(arch: str, input_size: int = RECORDED_INPUT_SIZE) -> dict[str, tuple[int, int]]:
    name, _ = split_name(arch)
    table = recorded(name)
    if table is None or input_size != RECORDED_INPUT_SIZE:
        return live_map_sizes(name, input_size)
    return {key: tuple(size) for key, size in table["map_sizes"].items()}


# -- live (timm and torch) -----------------------------------------------------------------------------


def build(name: str, **kwargs):
    """``timm.create_model(name, pretrained=False)``, in eval mode (weights: :mod:`resstream.model.weights`)."""
    import timm

    return timm.create_model(name, pretrained=False, **kwargs).eval()


def build_on_meta(name: str):
    import torch

    with torch.device("meta"):
        return build(name)


def live_map_sizes(name: str, input_size: int = RECORDED_INPUT_SIZE) -> dict[str, tuple[int, int]]:
    from resstream.model.recorded_tables import model_map_sizes

    return model_map_sizes(build_on_meta(name), input_size)


def _pretrained_cfgs(name: str) -> dict[str, dict]:
    import timm

    keep = (
        "hf_hub_id",
        "mean",
        "std",
        "input_size",
        "interpolation",
        "crop_pct",
        "crop_mode",
        "test_input_size",
        "test_crop_pct",
    )
    cfgs = {}
    for full in timm.list_pretrained(f"{name}.*"):
        cfg = timm.models.get_pretrained_cfg(full).to_dict()
        cfgs[full.partition(".")[2]] = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items() if k in keep}
    return cfgs


@functools.lru_cache(maxsize=8)
def live_table(name: str) -> dict:
    """What :data:`TABLES` records of one timm model, computed from the network built on meta."""
    import timm

    from resstream.model.walk import model_blocks

    default = timm.models.get_pretrained_cfg(name)
    return {
        "module": timm.models.model_entrypoint(name).__module__.rpartition(".")[2],
        "default_tag": default.tag if default is not None else None,
        "blocks": [list(astuple(info)) for info in model_blocks(build_on_meta(name))],
        "map_sizes": {key: list(size) for key, size in live_map_sizes(name).items()},
        "pretrained_cfgs": _pretrained_cfgs(name),
    }


def write_tables(path: Path = TABLES) -> Path:
    """Record every tested timm model's tables under the installed timm and torchvision."""
    from resstream.model.recorded_tables import BLOCK_FIELDS, torchvision_release, write_recorded

    header = (
        f'"timm": "{_installed_timm()}", "torchvision": "{torchvision_release()}", "input_size": '
        f'{RECORDED_INPUT_SIZE},\n "block_fields": {json.dumps(BLOCK_FIELDS)}'
    )
    write_recorded(path, header, "models", {n: live_table(n) for models in TESTED_MODELS.values() for n in models})
    _recorded_file.cache_clear()
    return path


if __name__ == "__main__":
    print(write_tables())
