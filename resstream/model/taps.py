"""Read block tensors in ONE forward pass that stops after the deepest one requested.

Why copies: torchvision's blocks compute ``out = bn2(...); out += identity; out = relu(out)`` with
``relu(inplace=True)``.  A hook that keeps a *reference* to ``bn2``'s output therefore ends up
holding relu(B + identity) once the block has finished (spec §1, 'Critical finding'; the author's
B and pre-ReLU FVs fell into it).  Here every tap is ``clone()``d inside the hook, before the
in-place ops run; clone is differentiable, so FV objectives optimise through it.

``hook_mode="author_alias"`` reproduces the author's behaviour on purpose: B is read through a
reference-holding hook (so it sees relu(O)) and the pre-ReLU sum is the post-ReLU output, like a
Lucent hook on the author's ``prerelu_out`` Identity.
"""

from __future__ import annotations

import torch

from resstream.model.blocks import B, D, O_POST, O_PRE, X, BlockInfo, TapRef, block_lookup, model_blocks

HOOK_MODES = ("intended", "author_alias")


class _StopForward(Exception):
    """Raised from the deepest hook: nothing after the last requested tap is computed."""


def _submodule(model: torch.nn.Module, dotted: str) -> torch.nn.Module:
    return model.get_submodule(dotted)


def block_taps(
    model: torch.nn.Module,
    x: torch.Tensor,
    taps: list[TapRef],
    hook_mode: str = "intended",
    blocks: list[BlockInfo] | None = None,
) -> dict[TapRef, torch.Tensor]:
    """Return ``{tap: tensor}`` for every requested tap, computed in one truncated forward."""
    if hook_mode not in HOOK_MODES:
        raise ValueError(f"fv hook mode '{hook_mode}' unknown; one of {', '.join(HOOK_MODES)}")
    blocks = blocks or model_blocks(model)
    alias = hook_mode == "author_alias"
    wanted = set(taps)
    # What each block must record to serve the requested taps.
    need: dict[str, set[str]] = {}
    for t in wanted:
        info = block_lookup(blocks, t.block)
        kinds = need.setdefault(t.block, set())
        if t.kind == O_PRE and not alias:
            kinds.update({B, D if info.downsample else X})
        elif t.kind == O_PRE and alias:
            kinds.add(O_POST)
        else:
            kinds.add(t.kind)
        if t.kind == D and not info.downsample:
            raise ValueError(f"block {t.block} has no downsample, so it has no D tap")
    deepest = max(need, key=lambda n: block_lookup(blocks, n).index)

    seen: dict[tuple[str, str], torch.Tensor] = {}
    handles = []

    def keep(block, kind, tensor, by_reference=False):
        seen[(block, kind)] = tensor if by_reference else tensor.clone()

    try:
        for name, kinds in need.items():
            info = block_lookup(blocks, name)
            module = _submodule(model, info.module)
            if X in kinds:
                handles.append(module.register_forward_pre_hook(lambda m, args, n=name: keep(n, X, args[0])))
            if D in kinds:
                ds = module.downsample
                handles.append(ds.register_forward_hook(lambda m, a, out, n=name: keep(n, D, out)))
            if B in kinds:
                bn = getattr(module, info.branch_bn)
                handles.append(bn.register_forward_hook(lambda m, a, out, n=name: keep(n, B, out, by_reference=alias)))
            stop_here = name == deepest

            def after_block(m, a, out, n=name, kinds=kinds, stop_here=stop_here):
                if O_POST in kinds:
                    keep(n, O_POST, out)
                if stop_here:
                    raise _StopForward

            handles.append(module.register_forward_hook(after_block))
        try:
            model(x)
        except _StopForward:
            pass
    finally:
        for h in handles:
            h.remove()

    result: dict[TapRef, torch.Tensor] = {}
    for t in wanted:
        if t.kind == O_PRE:
            if alias:
                result[t] = seen[(t.block, O_POST)]
            else:
                info = block_lookup(blocks, t.block)
                identity = seen[(t.block, D if info.downsample else X)]
                result[t] = seen[(t.block, B)] + identity
        else:
            result[t] = seen[(t.block, t.kind)]
    return result


def center_index(height: int, width: int) -> tuple[int, int]:
    """The centre neuron ``(H//2, W//2)``; for even sizes the bottom-right cell of the central 2x2
    (same rule as Lucent's ``_extract_act_pos`` and the author's ``get_activations``)."""
    return height // 2, width // 2


def center_activation(t: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W] -> [N, C]``: every channel's centre neuron."""
    cy, cx = center_index(t.shape[-2], t.shape[-1])
    return t[..., cy, cx]
