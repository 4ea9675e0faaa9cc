"""The ``ablation`` config section checked against the study before any job runs (the schema has
passed): lesioned blocks must be studied blocks of a ResNet (their tables and activations give the
sets and means), and the ``list`` set needs channels for every block, within the block."""

from __future__ import annotations

from resstream.base.errors import ConfigError

RESNET_BLOCKS = ("BasicBlock", "Bottleneck")


def check_ablation(study) -> None:
    """Raise :class:`ConfigError` for the first ``ablation`` value the job would refuse."""
    cfg = study.config["ablation"]
    if not cfg["enabled"]:
        return
    for block in cfg["blocks"]:
        if block not in study.study_blocks:
            raise ConfigError(
                f"ablation.blocks: block {block} is not studied (study.blocks: "
                f"{', '.join(study.study_blocks)}); its tables and activations give the sets and means. "
                f"Fix: add it to study.blocks or remove it from ablation.blocks"
            )
        info = study.block_info(block)
        if info.block_class not in RESNET_BLOCKS:
            raise ConfigError(
                f"ablation.blocks: block {block} is a {info.block_class}; lesions support ResNet "
                f"blocks ({', '.join(RESNET_BLOCKS)}). Fix: use a ResNet model.arch"
            )
        if "list" in cfg["sets"]:
            _check_list(block, cfg["channels"].get(block), info.channels)


def _check_list(block: str, channels, n_channels: int) -> None:
    if not channels:
        raise ConfigError(
            f"ablation.channels: block {block} has no list, but ablation.sets has list. "
            f"Fix: set ablation.channels.{block} to its channels, e.g. [0, 5, 9]"
        )
    bad = [c for c in channels if c >= n_channels]
    if bad:
        raise ConfigError(
            f"ablation.channels.{block}: channel(s) {bad} out of range; block {block} has channels 0..{n_channels - 1}"
        )
