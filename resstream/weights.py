"""Build a torchvision ResNet and load its weights from one of three sources.

A weights spec is one string:

* ``IMAGENET1K_V1`` (any torchvision enum member name): torchvision's pretrained weights through
  torch's hub cache; a connected machine downloads them once.
* a path to a local checkpoint (``.pth``): checked against torchvision's published sha256.
* ``random:SEED``: ``torch.manual_seed(SEED)`` then ``<arch>(weights=None)``, so anyone can rebuild
  exactly the same random network.  Outputs made from these are marked as random everywhere.

Every model comes with a :class:`WeightsIdentity` that outputs record.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torchvision

from .errors import UserError

# Full sha256 of torchvision's published checkpoints.  torchvision itself only checks the 8-10 hex
# prefix embedded in the file name; where we know the full digest we check all of it.
KNOWN_SHA256 = {
    "resnet18-f37072fd.pth": "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
}

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2", "wide_resnet101_2")


class WeightsError(UserError, RuntimeError):
    """The requested weights cannot be had; the message names the source and the fix."""


@dataclass(frozen=True)
class WeightsIdentity:
    arch: str
    source: str  # the spec as given in config
    kind: str  # "pretrained" | "checkpoint" | "random"
    state_dict_sha256: str
    file_sha256: str | None = None

    @property
    def pretrained(self) -> bool:
        return self.kind != "random"

    @property
    def label(self) -> str:
        """Short human label used in plot titles and reports."""
        if self.pretrained:
            return f"{self.arch} {self.source} (sha256 {self.state_dict_sha256[:12]})"
        return f"{self.arch} RANDOM WEIGHTS ({self.source}, not pretrained)"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["pretrained"] = self.pretrained
        d["label"] = self.label
        return d


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def state_dict_sha256(state_dict: dict) -> str:
    """Digest of a state dict independent of how it was stored: names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    return h.hexdigest()


def _weights_enum(arch: str):
    """torchvision's weights enum for an arch, e.g. ResNet18_Weights."""
    return torchvision.models.get_model_weights(arch)


def _expected_digest(arch: str, filename: str) -> str | None:
    """Full sha256 where published, else torchvision's file-name prefix (e.g. resnet34-b627a593)."""
    if filename in KNOWN_SHA256:
        return KNOWN_SHA256[filename]
    m = re.search(r"-([0-9a-f]{8,})\.pth$", filename)
    return m.group(1) if m else None


def _enum_member(arch: str, name: str):
    enum = _weights_enum(arch)
    try:
        return enum[name]
    except KeyError:
        names = ", ".join(m.name for m in enum)
        raise WeightsError(
            f"model.weights '{name}' is not a weights set of {arch}; torchvision offers: {names}. "
            f"Or give a checkpoint path, or random:SEED."
        ) from None


def hub_checkpoint_path(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _cached_checkpoint(arch: str, name: str, allow_download: bool) -> tuple[Path, str]:
    """``(path, sha256)`` of torchvision's checkpoint in the hub cache, downloaded first if it is
    missing and downloads are allowed; the digest is checked."""
    member = _enum_member(arch, name)
    cached = hub_checkpoint_path(member.url)
    if not cached.exists():
        if not allow_download:
            raise WeightsError(_missing_weights_message(arch, name, cached, "downloads are disabled"))
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(member.url, str(cached), progress=False)
        except Exception as exc:  # offline machines fail here with URLError/OSError
            raise WeightsError(_missing_weights_message(arch, name, cached, f"download failed: {exc}")) from None
    digest = file_sha256(cached)
    _check_digest(arch, cached, digest)
    return cached, digest


def _load_pretrained(arch: str, name: str, allow_download: bool):
    cached, digest = _cached_checkpoint(arch, name, allow_download)
    return torch.load(cached, map_location="cpu", weights_only=True), digest


def _missing_weights_message(arch, name, cached, why):
    return (
        f"weights {arch} {name} are not in torch's hub cache ({cached}) and {why}. "
        f"Fix: copy {cached.name} there (or point TORCH_HOME at a cache holding it), "
        f"or set model.weights to a local checkpoint path; for a test run use model.weights: random:0."
    )


def _check_digest(arch: str, path: Path, digest: str) -> None:
    expected = _expected_digest(arch, path.name)
    if expected is not None:
        if not digest.startswith(expected):
            raise WeightsError(
                f"checkpoint {path} has sha256 {digest}, expected {expected} for {path.name}: the file is "
                f"corrupt or not torchvision's. Fix: download it again or point model.weights at the right file."
            )
        return
    # A renamed file: accept it when it is one of torchvision's published checkpoints of this arch.
    published = [os.path.basename(m.url) for m in _weights_enum(arch)]
    for name in published:
        exp = _expected_digest(arch, name)
        if exp and digest.startswith(exp):
            return
    raise WeightsError(
        f"checkpoint {path} (sha256 {digest}) matches none of torchvision's {arch} checkpoints "
        f"({', '.join(published)}). Fix: use the unmodified file torchvision publishes."
    )


def _checkpoint_file(weights: str) -> Path | None:
    """The checkpoint a weights spec names (it must exist), or None for an enum name."""
    if os.sep not in weights and not weights.endswith((".pth", ".pt")):
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"model.weights checkpoint {path} does not exist. Fix: correct the path, or use "
            f"IMAGENET1K_V1 (torch hub cache) or random:SEED."
        )
    return path


def check_weights_available(arch: str, weights: str, allow_download: bool, fetch: bool = True) -> None:
    """Check, before any job runs, that ``load_model`` will find the weights: the checkpoint or
    cached hub file exists and has the right sha256 (no model is built).  A missing hub file with
    downloads allowed is downloaded here, once: an offline machine stops before any job (and before
    Snakemake removes outdated outputs), and parallel jobs never race to fetch the same file; on a
    cluster the main process runs where it was started (usually a login node with a network).
    ``fetch=False`` (a dry run) only checks what is there: a missing file with downloads allowed
    passes.  Raises :class:`WeightsError`."""
    weights = str(weights)
    if arch not in ARCHS:
        raise WeightsError(f"model.arch '{arch}' is not supported; choose one of {', '.join(ARCHS)}.")
    if weights.startswith("random:"):
        return
    path = _checkpoint_file(weights)
    if path is not None:
        _check_digest(arch, path, file_sha256(path))
        return
    if not fetch and allow_download and not hub_checkpoint_path(_enum_member(arch, weights).url).exists():
        return  # a dry run: the real run fetches it
    _cached_checkpoint(arch, weights, allow_download)


def load_model(arch: str = "resnet18", weights: str = "IMAGENET1K_V1", allow_download: bool = True):
    """Return ``(model, identity)``: the network in eval mode with frozen weights."""
    if arch not in ARCHS:
        raise WeightsError(f"model.arch '{arch}' is not supported; choose one of {', '.join(ARCHS)}.")
    builder = getattr(torchvision.models, arch)
    weights = str(weights)
    file_digest = None
    if weights.startswith("random:"):
        try:
            seed = int(weights.split(":", 1)[1])
        except ValueError:
            raise WeightsError(f"model.weights '{weights}': random weights need an integer seed, e.g. random:0.") from None
        torch.manual_seed(seed)
        model = builder(weights=None)
        kind = "random"
    else:
        model = builder(weights=None)
        path = _checkpoint_file(weights)
        if path is not None:
            file_digest = file_sha256(path)
            _check_digest(arch, path, file_digest)
            state = torch.load(path, map_location="cpu", weights_only=True)
            kind = "checkpoint"
        else:
            state, file_digest = _load_pretrained(arch, weights, allow_download)
            kind = "pretrained"
        model.load_state_dict(state)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    identity = WeightsIdentity(
        arch=arch,
        source=weights,
        kind=kind,
        state_dict_sha256=state_dict_sha256(model.state_dict()),
        file_sha256=file_digest,
    )
    return model, identity
