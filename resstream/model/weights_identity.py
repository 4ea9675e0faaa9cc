"""The identity every output records of its network's weights (:class:`WeightsIdentity`): the spec,
where the weights come from, and digests of the file and of the loaded tensors.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass

from resstream.model.weights_source import KIND_SOURCES


@dataclass(frozen=True)
class WeightsIdentity:
    arch: str
    source: str  # the spec as given in config
    # "pretrained" (hub) | "checkpoint" (torchvision's file) | "timm" (a timm tag's) | "custom" (any other file) | "random"
    kind: str
    state_dict_sha256: str
    file_sha256: str | None = None
    timm_model: str | None = None  # a timm arch: the model and its pretrained tag ("resnet50.a1_in1k")
    preprocessing: dict | None = None  # a timm arch: its pretrained_cfg's mean, std, size, crop, interpolation

    @property
    def weights_source(self) -> str:
        """What is known of where the weights come from: ``torchvision`` (its published weights, by
        name or by a file with their digest), ``timm`` (a timm tag's published weights), ``custom``
        (a checkpoint of one's own: how it was trained the tool cannot know) or ``random``."""
        return KIND_SOURCES[self.kind]

    @property
    def label(self) -> str:
        """Short human label used in plot titles and reports."""
        if self.kind == "custom":
            return (
                f"{self.arch} custom checkpoint {os.path.basename(self.source)} "
                f"(file sha256 {str(self.file_sha256)[:12]}, not torchvision's weights)"
            )
        if self.kind == "timm":
            return f"timm:{self.timm_model} pretrained (file sha256 {str(self.file_sha256)[:12]})"
        if self.weights_source == "torchvision":
            return f"{self.arch} {self.source} (sha256 {self.state_dict_sha256[:12]})"
        return f"{self.arch} RANDOM WEIGHTS ({self.source}, not pretrained)"

    def as_dict(self) -> dict:
        d = asdict(self)
        for key in ("timm_model", "preprocessing"):  # a torchvision arch's record stays as it was
            if d[key] is None:
                del d[key]
        d["weights_source"] = self.weights_source
        d["label"] = self.label
        return d


def state_dict_sha256(state_dict: dict) -> str:
    """Digest of a state dict independent of how it was stored: names, dtypes, shapes and bytes."""
    import torch

    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    return h.hexdigest()
