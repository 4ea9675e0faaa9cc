"""The dictionary section's settings a job would refuse, checked once in the workflow's pre-flight
(resstream/workflow/smk.py ``check_config_values``) before any job starts, as the ablation stage
checks its own (resstream/ablation/settings.py)."""

from resstream.base.errors import ConfigError
from resstream.model.blocks import layer_name, role_tap


def check_dictionary(study) -> None:
    """A crosscoder keeps k (and aux_k) of its latents: both must fit the smallest studied block's
    latent count (expansion x the channels its encoder reads)."""
    section = study.config["dictionary"]
    if not section["enabled"] or not study.study_blocks:
        return
    block = min(study.study_blocks, key=lambda b: study.block_info(b).channels)
    latents = section["expansion"] * len(section["inputs"]) * study.block_info(block).channels
    for key in ("k", "aux_k"):
        if section[key] > latents:
            raise ConfigError(
                f"dictionary.{key}: {section[key]} is more than the {latents} latents of block {block} "
                f"(dictionary.expansion {section['expansion']} x {len(section['inputs'])} input(s) x "
                f"{study.block_info(block).channels} channels); lower it or raise dictionary.expansion"
            )


def feature_fv_settings(study, block: str):
    """The FV settings of a block's feature FVs: those of the block's O layer (the channel FVs' steps,
    lr, jitter and overrides), as the features read the block's own grid."""
    return study.fv_settings(layer_name(study.blocks, role_tap(study.blocks, block, "O", study.o_relu)))
