"""torchvision's published checkpoints: where torch's hub cache keeps them, fetching them, and
telling them by their sha256 (the full digest where known, else the prefix in the file name).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from resstream.model.checkpoint_files import WeightsError, file_sha256
from resstream.model.structure import weights_files
from resstream.model.weights_spec import ANY_CHECKPOINT_HINT, enum_url

# Full sha256 of torchvision's published checkpoints.  torchvision itself only checks the 8-10 hex
# prefix embedded in the file name; where we know the full digest we check all of it.
KNOWN_SHA256 = {
    "resnet18-f37072fd.pth": "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
}


def _expected_digest(arch: str, filename: str) -> str | None:
    """Full sha256 where published, else torchvision's file-name prefix (e.g. resnet34-b627a593)."""
    if filename in KNOWN_SHA256:
        return KNOWN_SHA256[filename]
    m = re.search(r"-([0-9a-f]{8,})\.pth$", filename)
    return m.group(1) if m else None


def hub_checkpoint_path(url: str) -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def cached_checkpoint(
    arch: str, name: str, allow_download: bool, no_download_why: str = "downloads are disabled"
) -> tuple[Path, str]:
    """``(path, sha256)`` of torchvision's checkpoint in the hub cache, downloaded first if it is
    missing and downloads are allowed; the digest is checked."""
    url = enum_url(arch, name)
    cached = hub_checkpoint_path(url)
    if not cached.exists():
        if not allow_download:
            raise WeightsError(_missing_weights_message(arch, name, cached, no_download_why))
        try:
            import torch

            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(cached), progress=False)
        except Exception as exc:  # offline machines fail here with URLError/OSError
            raise WeightsError(_missing_weights_message(arch, name, cached, f"download failed: {exc}")) from None
    digest = file_sha256(cached)
    check_digest(arch, cached, digest)
    return cached, digest


def load_pretrained(arch: str, name: str, allow_download: bool, no_download_why: str = "downloads are disabled"):
    import torch

    cached, digest = cached_checkpoint(arch, name, allow_download, no_download_why)
    return torch.load(cached, map_location="cpu", weights_only=True), digest


def _missing_weights_message(arch, name, cached, why):
    return (
        f"weights {arch} {name} are not in torch's hub cache ({cached}) and {why}. "
        f"Fix: copy {cached.name} there (or point TORCH_HOME at a cache holding it), "
        f"or set model.weights to a local checkpoint path; for a test run use model.weights: random:0."
    )


def is_torchvision_file(arch: str, path: Path, digest: str) -> bool:
    """True when the file is one of torchvision's published checkpoints of ``arch``, judged by its
    name's expected digest or else any published prefix (a renamed file)."""
    expected = _expected_digest(arch, path.name)
    if expected is not None:
        return digest.startswith(expected)
    return any(
        (exp := _expected_digest(arch, os.path.basename(url))) and digest.startswith(exp)
        for url in weights_files(arch).values()
    )


def check_digest(arch: str, path: Path, digest: str) -> None:
    if is_torchvision_file(arch, path, digest):
        return
    expected = _expected_digest(arch, path.name)
    if expected is not None:
        raise WeightsError(
            f"checkpoint {path} has sha256 {digest}, expected {expected} for {path.name}: the file is "
            f"corrupt or not torchvision's. Fix: download it again or point model.weights at the right file."
        )
    published = [os.path.basename(url) for url in weights_files(arch).values()]
    raise WeightsError(
        f"checkpoint {path} (sha256 {digest}) matches none of torchvision's {arch} checkpoints "
        f"({', '.join(published)}). Fix: use the unmodified file torchvision publishes, or, for a checkpoint "
        f"of your own, {ANY_CHECKPOINT_HINT}."
    )
