"""Where to run: config ``model.device`` (auto | cpu | cuda)."""

from __future__ import annotations

import torch


def resolve_device(setting: str = "auto") -> torch.device:
    if setting == "cpu":
        return torch.device("cpu")
    if setting == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("model.device is 'cuda' but no CUDA device is visible. Fix: set model.device: auto or cpu.")
        return torch.device("cuda")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
