"""The stage-level crosscoder (``dictionary.scope: stage``), after the author's group crosscoders
(``cest-andre/residual-stream-interp``, ``group_cc.py``: one encoder reads one point of the stream,
one decoder writes the activations of several blocks): per network stage (ResNet's layer1..layer4),
one encoder reads the stage's first studied block (its ``dictionary.inputs``, I and B by default) and
decoders write I, B and O of every studied block of the stage.  A feature's M is then read per block,
from its decoders into that block's I and B.

Tensors are named ``"{block}:{role}"`` with the block's dots as underscores (``"2_0:B"``: torch's
parameter names take no dots).  A block's I is often the previous block's O (the same
tensor): it is decoded once, under its first name, and both roles point to it."""

from __future__ import annotations

from resstream.model.blocks import block_lookup, role_tap

ROLES = ("I", "B", "O")


def stage_groups(blocks, study_blocks: list[str]) -> dict[str, list[str]]:
    """``{"stage2": ["2.0", "2.1"], ...}``: the studied blocks by network stage, in network order."""
    groups: dict[str, list[str]] = {}
    for name in study_blocks:
        groups.setdefault(f"stage{block_lookup(blocks, name).stage}", []).append(name)
    return groups


def stage_readout(blocks, stage_blocks: list[str], inputs: list[str], o_relu: str) -> tuple[dict, list[str], dict]:
    """``(refs {name: TapRef}, encoder input names, roles {block: {role: name}})`` of a stage's
    crosscoder: the encoder reads ``inputs`` (roles) of ``stage_blocks[0]``."""
    refs, names, roles = {}, {}, {}
    for block in stage_blocks:
        roles[block] = {}
        for role in ROLES:
            ref = role_tap(blocks, block, role, o_relu)
            if ref not in names:
                names[ref] = f"{block.replace('.', '_')}:{role}"
                refs[names[ref]] = ref
            roles[block][role] = names[ref]
    return refs, [roles[stage_blocks[0]][r] for r in inputs], roles
