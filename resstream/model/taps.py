"""Read block tensors in ONE forward pass that stops after the deepest one requested.

Why copies: torchvision's blocks compute ``out = bn2(...); out += identity; out = relu(out)`` with
``relu(inplace=True)``.  A hook that keeps a *reference* to ``bn2``'s output therefore ends up
holding relu(B + identity) once the block has finished (ConvNeXt, MobileNetV3 and EfficientNet
blocks do ``result += input`` on their branch output the same way) (docs/method.md#taps-i-b-and-o; the author's
B and pre-ReLU FVs fell into it).  Here every tap is ``clone()``d inside the hook, before the
in-place ops run; clone is differentiable, so FV objectives optimise through it.

``hook_mode="author_alias"`` reproduces the author's behaviour on purpose: B is read through a
reference-holding hook (so it sees relu(O)) and the pre-ReLU sum is the post-ReLU output, like a
Lucent hook on the author's ``prerelu_out`` Identity.
"""

from __future__ import annotations

import torch

from resstream.model.blocks import O_POST, O_PRE, B, BlockInfo, D, TapRef, X, block_lookup
from resstream.model.walk import model_blocks

HOOK_MODES = ("intended", "author_alias")


class _StopForward(Exception):
    """Raised from the deepest hook: nothing after the last requested tap is computed."""


def _recorded_tensors(blocks: list[BlockInfo], taps: list[TapRef], alias: bool) -> dict[str, set[str]]:
    """What each block must record to serve the requested taps: ``{block: {tensor, ...}}``.  The
    pre-nonlinearity sum is computed as B + skip (a clone of it could not be hooked: the sum has no
    module), or, in ``author_alias`` mode, read as the output like the author's Identity hook."""
    need: dict[str, set[str]] = {}
    for t in taps:
        info = block_lookup(blocks, t.block)
        if t.tensor == D and not info.downsample:
            raise ValueError(f"block {t.block} has no skip projection, so it has no D tap")
        if t.tensor == B and not info.has_sum:
            raise ValueError(f"block {t.block} has no residual sum, so it has no B tap")
        tensors = need.setdefault(t.block, set())
        if t.tensor == O_PRE and not alias:
            tensors.update({B, D if info.downsample else X})
        elif t.tensor == O_PRE and alias:
            tensors.add(O_POST)
        else:
            tensors.add(t.tensor)
    return need


def _register_hooks(model, blocks, need: dict[str, set[str]], seen: dict, alias: bool) -> list:
    """Hooks that clone each needed tensor into ``seen[(block, tensor)]`` as it is computed, the
    deepest block's raising :class:`_StopForward` after it ran.  B by reference in alias mode."""
    deepest = max(need, key=lambda n: block_lookup(blocks, n).index)

    def keep(block, tensor, value, by_reference=False):
        seen[(block, tensor)] = value if by_reference else value.clone()

    handles = []
    for name, tensors in need.items():
        info = block_lookup(blocks, name)
        module = model.get_submodule(info.module)
        if X in tensors:
            handles.append(module.register_forward_pre_hook(lambda m, args, n=name: keep(n, X, args[0])))
        if D in tensors:
            skip = module.get_submodule(info.skip_module)
            handles.append(skip.register_forward_hook(lambda m, a, out, n=name: keep(n, D, out)))
        if B in tensors:
            branch = module.get_submodule(info.branch_out)
            handles.append(branch.register_forward_hook(lambda m, a, out, n=name: keep(n, B, out, by_reference=alias)))

        def after_block(m, a, out, n=name, record=O_POST in tensors, stop_here=name == deepest):
            if record:
                keep(n, O_POST, out)
            if stop_here:
                raise _StopForward

        handles.append(module.register_forward_hook(after_block))
    return handles


def _assemble(blocks, taps: list[TapRef], seen: dict, alias: bool) -> dict[TapRef, torch.Tensor]:
    result: dict[TapRef, torch.Tensor] = {}
    for t in taps:
        if t.tensor == O_PRE and alias:
            result[t] = seen[(t.block, O_POST)]
        elif t.tensor == O_PRE:
            info = block_lookup(blocks, t.block)
            result[t] = seen[(t.block, B)] + seen[(t.block, D if info.downsample else X)]
        else:
            result[t] = seen[(t.block, t.tensor)]
    return result


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
    wanted = list(dict.fromkeys(taps))
    need = _recorded_tensors(blocks, wanted, alias)
    seen: dict[tuple[str, str], torch.Tensor] = {}
    handles = _register_hooks(model, blocks, need, seen, alias)
    try:
        model(x)
    except _StopForward:
        pass
    finally:
        for h in handles:
            h.remove()
    return _assemble(blocks, wanted, seen, alias)


def center_index(height: int, width: int) -> tuple[int, int]:
    """The centre neuron ``(H//2, W//2)``; for even sizes the bottom-right cell of the central 2x2
    (same rule as Lucent's ``_extract_act_pos`` and the author's ``get_activations``)."""
    return height // 2, width // 2


def center_activation(t: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W] -> [N, C]``: every channel's centre neuron."""
    cy, cx = center_index(t.shape[-2], t.shape[-1])
    return t[..., cy, cx]
