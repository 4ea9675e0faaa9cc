"""A torchvision architecture's block table, feature-map sizes and published weights, without
building it: planning a study (every Snakemake command's parse) imports no torch.

They are read from ``arch_tables.json`` (package data), recorded from the networks themselves by
:func:`write_tables` (``python -m resstream.model.structure``) for the torchvision version named in
the file; tests/model/test_structure.py checks every arch against a live build.  Under another
torchvision version, or for another input size, they are computed live from the model built on the
``meta`` device (no weights, no memory).
"""

from __future__ import annotations

import contextlib
import functools
import json
from dataclasses import astuple
from pathlib import Path

from resstream.base.errors import ConfigError
from resstream.model import timm_models
from resstream.model.blocks import BlockInfo
from resstream.model.families import ARCHS, arch_family, supported_families_line
from resstream.model.recorded_tables import (
    BLOCK_FIELDS,
    RECORDED_INPUT_SIZE,
    model_map_sizes,
    torchvision_release,
    write_recorded,
)

TABLES = Path(__file__).with_name("arch_tables.json")


@contextlib.contextmanager
def meta_device():
    """Build models on the meta device.  RegNet computes its stage widths with ``.tolist()`` on a
    tensor while building (``BlockParams.from_init_params``), which the meta device cannot do: that
    one computation runs on the CPU."""
    import torch
    from torchvision.models import regnet

    original = regnet.BlockParams.from_init_params

    def on_cpu(*args, **kwargs):
        with torch.device("cpu"):
            return original(*args, **kwargs)

    regnet.BlockParams.from_init_params = on_cpu
    try:
        with torch.device("meta"):
            yield
    finally:
        regnet.BlockParams.from_init_params = original


def build_on_meta(arch: str):
    """``torchvision.models.<arch>(weights=None)`` on the meta device, in eval mode."""
    import torchvision

    with meta_device():
        return getattr(torchvision.models, arch)(weights=None).eval()


class ArchError(ConfigError):
    """A model.arch resstream cannot study."""


def check_arch(arch: str) -> str:
    """The arch's family; an arch outside the supported families is refused with one line."""
    if timm_models.is_timm(arch):
        return timm_models.family_of(arch)
    family = arch_family(arch)
    if family is not None:
        return family
    why = (
        "is a torchvision model without residual blocks of a supported family"
        if arch in torchvision_models()
        else "is not a torchvision model resstream knows"
    )
    raise ArchError(
        f"model.arch '{arch}' {why}. Fix: choose an arch of a supported family: {supported_families_line()}"
    )


# -- recorded ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _recorded_file() -> dict:
    """The recorded tables, or {} when they were recorded under another torchvision (or another
    input size, or another :class:`BlockInfo`)."""
    tables = json.loads(TABLES.read_text())
    same = (tables["torchvision"], tables["input_size"], tables["block_fields"]) == (
        torchvision_release(),
        RECORDED_INPUT_SIZE,
        BLOCK_FIELDS,
    )
    return tables if same else {}


def _recorded() -> dict:
    """The recorded tables by arch ({}: compute live)."""
    return _recorded_file().get("archs", {})


@functools.lru_cache(maxsize=8)
def structure(arch: str) -> tuple[BlockInfo, ...]:
    """Block table of an architecture (recorded, else built on the meta device)."""
    check_arch(arch)
    if timm_models.is_timm(arch):
        return timm_models.structure(arch)
    recorded = _recorded().get(arch)
    if recorded is None:
        return live_structure(arch)
    return tuple(BlockInfo(**dict(zip(BLOCK_FIELDS, row))) for row in recorded["blocks"])


@functools.lru_cache(maxsize=8)
def map_sizes(arch: str, input_size: int = RECORDED_INPUT_SIZE) -> dict[str, tuple[int, int]]:
    """Spatial size of every block's output (by block name) and of every block input that no block
    produces (by module path: the stem's ``maxpool``, ConvNeXt's ``features.2``) at an input size."""
    check_arch(arch)
    if timm_models.is_timm(arch):
        return timm_models.map_sizes(arch, input_size)
    recorded = _recorded().get(arch)
    if recorded is None or input_size != RECORDED_INPUT_SIZE:  # the file records this size only
        return live_map_sizes(arch, input_size)
    return {key: tuple(size) for key, size in recorded["map_sizes"].items()}


def torchvision_models() -> list[str]:
    """Every model name torchvision offers (``torchvision.models.list_models``), for refusals."""
    recorded = _recorded_file().get("torchvision_models")
    return list(recorded) if recorded is not None else live_torchvision_models()


def weights_files(arch: str) -> dict[str, str]:
    """torchvision's weights sets of an architecture: ``{enum member name: checkpoint URL}``."""
    check_arch(arch)
    recorded = _recorded().get(arch)
    return dict(recorded["weights"]) if recorded is not None else live_weights_files(arch)


# -- live ----------------------------------------------------------------------------------------------


def live_structure(arch: str) -> tuple[BlockInfo, ...]:
    from resstream.model.walk import model_blocks

    return tuple(model_blocks(build_on_meta(arch)))


def live_map_sizes(arch: str, input_size: int = RECORDED_INPUT_SIZE) -> dict[str, tuple[int, int]]:
    """:func:`map_sizes` from a forward pass of the model built on the meta device."""
    return model_map_sizes(build_on_meta(arch), input_size)


def live_weights_files(arch: str) -> dict[str, str]:
    import torchvision

    return {member.name: member.url for member in torchvision.models.get_model_weights(arch)}


def live_torchvision_models() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(torchvision.models))


def live_table(arch: str) -> dict:
    """What :data:`TABLES` records of one architecture, computed from the network."""
    return {
        "blocks": [list(astuple(info)) for info in live_structure(arch)],
        "map_sizes": {key: list(size) for key, size in live_map_sizes(arch).items()},
        "weights": live_weights_files(arch),
    }


def write_tables(path: Path = TABLES) -> Path:
    """Record every supported architecture's tables under the installed torchvision."""
    header = (
        f'"torchvision": "{torchvision_release()}", "input_size": {RECORDED_INPUT_SIZE},\n'
        f' "block_fields": {json.dumps(BLOCK_FIELDS)},\n "torchvision_models": {json.dumps(live_torchvision_models())}'
    )
    write_recorded(path, header, "archs", {arch: live_table(arch) for arch in ARCHS})
    _recorded_file.cache_clear()
    return path


if __name__ == "__main__":
    print(write_tables())
