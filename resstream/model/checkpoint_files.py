"""Checkpoint files: reading their tensors without running code from them, unwrapping the usual
wrappings (``state_dict``/``model`` entries, ``module.``/``model.`` key prefixes), and checking that
they fit an architecture and hold finite numbers; each refusal is one :class:`WeightsError` line.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from resstream.base.errors import UserError
from resstream.model.families import CLASSIFIER, arch_family

if TYPE_CHECKING:  # torch is imported where a network or a tensor is handled: checking a spec needs none
    import torch

# prefixes that DataParallel / DistributedDataParallel and common training wrappers put on every key
WRAPPER_PREFIXES = ("module.", "model.")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class WeightsError(UserError, RuntimeError):
    """The requested weights cannot be had; the message names the source and the fix."""


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_checkpoint(path: Path) -> dict:
    """The tensors of a checkpoint file, unwrapped (:func:`unwrap_state_dict`).  Read with
    ``weights_only`` (no code from the file runs); ``argparse.Namespace`` is allowed, as
    torchvision's reference training scripts store their arguments in the checkpoint."""
    import torch

    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (not a zip/pickle), EOFError, ...
        raise WeightsError(
            f"model.weights checkpoint {path} cannot be read as tensors ({_unreadable_reason(exc)}). Fix: save "
            f"the weights with torch.save(model.state_dict(), path)."
        ) from None
    return unwrap_state_dict(obj, path)


def _unreadable_reason(exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in our words: torch's own message
    advises loading with ``weights_only=False``, which would run the file's code, and carries
    terminal escape codes."""
    text = ANSI_ESCAPE.sub("", str(exc)).strip()
    pickled = re.search(r"GLOBAL ([\w.]+)", text)
    if pickled:
        return (
            f"it holds the Python object {pickled.group(1)}, and loading that would run code from the file; "
            f"it was not loaded"
        )
    if text.startswith("Weights only load failed"):
        return (
            "it holds Python objects besides tensors, and loading them would run code from the file; it was not loaded"
        )
    return text.splitlines()[0][:200] if text else type(exc).__name__


def check_finite(state: dict, where) -> None:
    """Raise :class:`WeightsError` naming the first tensor (in the file's order) holding NaN or Inf:
    every FV and activation of such a network would be NaN."""
    import torch

    for name, tensor in state.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise WeightsError(
                    f"model.weights checkpoint {where} holds non-finite weights: {name} has {bad} NaN or Inf "
                    f"value(s) of {tensor.numel()} (the first such tensor). Fix: use a checkpoint saved before "
                    f"training diverged; every FV and activation of this network would be NaN."
                )


def unwrap_state_dict(obj, where) -> dict:
    """The state dict inside the usual wrappings: a ``state_dict`` or ``model`` entry (nested ones
    too), every key prefixed ``module.`` (DataParallel) or ``model.``; entries that are not
    tensors (``optimizer``, ``epoch``, ``args``, ...) are ignored."""
    import torch

    while isinstance(obj, dict):
        inner = next((obj[k] for k in ("state_dict", "model") if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    tensors = (
        {k: v for k, v in obj.items() if isinstance(k, str) and torch.is_tensor(v)} if isinstance(obj, dict) else {}
    )
    if not tensors:
        raise WeightsError(
            f"model.weights checkpoint {where} holds no state dict (no tensors at the top level nor under "
            f"'state_dict' or 'model'). Fix: save the weights with torch.save(model.state_dict(), path)."
        )
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in tensors):
                tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
                stripped = True
    return tensors


def _fit_classifier(model: torch.nn.Module, state: dict, arch: str) -> None:
    """A checkpoint fine-tuned for another number of classes: give the classifier layer (``fc``,
    ``classifier.N``: :data:`resstream.model.families.CLASSIFIER`) its shape (the study reads the
    blocks, never the classifier)."""
    import torch

    path = CLASSIFIER[arch_family(arch)]
    w = state.get(f"{path}.weight")
    old = model.get_submodule(path)
    if w is not None and w.dim() == 2 and tuple(w.shape) != tuple(old.weight.shape):
        parent, _, name = path.rpartition(".")
        new = torch.nn.Linear(w.shape[1], w.shape[0], bias=f"{path}.bias" in state, device=old.weight.device)
        setattr(model.get_submodule(parent) if parent else model, name, new)


def _listed(keys: list[str], first: int = 4) -> str:
    more = f" and {len(keys) - first} more" if len(keys) > first else ""
    return ", ".join(keys[:first]) + more


def check_state_dict_fits(model: torch.nn.Module, state: dict, arch: str, where) -> None:
    """Raise :class:`WeightsError` naming the first few missing, unexpected and misshapen keys."""
    _fit_classifier(model, state, arch)
    expected = model.state_dict()
    # num_batches_tracked: not in older checkpoints; BatchNorm fills it in when loading them
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    misshapen = [
        f"{k} {list(state[k].shape)} (expected {list(expected[k].shape)})"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    problems = [
        f"{what} {_listed(keys)}"
        for what, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", misshapen))
        if keys
    ]
    if problems:
        raise WeightsError(
            f"model.weights checkpoint {where} does not fit {arch}: {'; '.join(problems)}. Fix: give a {arch} "
            f"checkpoint (understood: a 'state_dict' or 'model' entry, keys prefixed 'module.' or 'model.')."
        )
