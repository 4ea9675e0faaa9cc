"""Build a torchvision model (any supported residual family) and load its weights from one of three sources.

A weights spec is one string:

* ``IMAGENET1K_V1`` (any torchvision enum member name): torchvision's pretrained weights through
  torch's hub cache; a connected machine downloads them once.
* a path to a local checkpoint (``.pth``): with ``model.checkpoint: torchvision`` (the default)
  checked against torchvision's published sha256; with ``model.checkpoint: any`` a checkpoint of
  one's own (fine-tuned, adversarially robust, ...) in the usual wrappings (see
  :func:`unwrap_state_dict`), recorded by its sha256 and labelled "custom checkpoint".
* ``random:SEED``: ``torch.manual_seed(SEED)`` then ``<arch>(weights=None)``, so anyone can rebuild
  exactly the same random network.  Outputs made from these are marked as random everywhere.

Every model comes with a :class:`WeightsIdentity` that outputs record.

About 450 lines on purpose: the three sources share the identity record every output names and
the one-line refusals; the family-specific parts live in :mod:`resstream.model.families`.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from resstream.base.errors import UserError
from resstream.model.weights_source import KIND_SOURCES

if TYPE_CHECKING:  # torch is imported where a network or a tensor is handled: checking a spec needs none
    import torch

# Full sha256 of torchvision's published checkpoints.  torchvision itself only checks the 8-10 hex
# prefix embedded in the file name; where we know the full digest we check all of it.
KNOWN_SHA256 = {
    "resnet18-f37072fd.pth": "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
}

from resstream.model import timm_models, timm_weights  # noqa: E402
from resstream.model.families import CLASSIFIER, arch_family, check_arch  # noqa: E402
from resstream.model.structure import weights_files  # noqa: E402
CHECKPOINT_MODES = ("torchvision", "any")
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".tar", ".ckpt")
# prefixes that DataParallel / DistributedDataParallel and common training wrappers put on every key
WRAPPER_PREFIXES = ("module.", "model.")
# how a user asks for a checkpoint of their own, in each place that takes weights
ANY_CHECKPOINT_HINT = ("set model.checkpoint: any (resstream fv / activations: --checkpoint any; the Python API: "
                       "checkpoint=\"any\")")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class WeightsError(UserError, RuntimeError):
    """The requested weights cannot be had; the message names the source and the fix."""


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
            return (f"{self.arch} custom checkpoint {os.path.basename(self.source)} "
                    f"(file sha256 {str(self.file_sha256)[:12]}, not torchvision's weights)")
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


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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


def _expected_digest(arch: str, filename: str) -> str | None:
    """Full sha256 where published, else torchvision's file-name prefix (e.g. resnet34-b627a593)."""
    if filename in KNOWN_SHA256:
        return KNOWN_SHA256[filename]
    m = re.search(r"-([0-9a-f]{8,})\.pth$", filename)
    return m.group(1) if m else None


def _enum_url(arch: str, name: str) -> str:
    """The checkpoint URL of a member of the arch's torchvision weights enum (e.g. ResNet18_Weights)."""
    urls = weights_files(arch)
    try:
        return urls[name]
    except KeyError:
        names = ", ".join(urls)
        raise WeightsError(
            f"model.weights '{name}' is not a weights set of {arch}; torchvision offers: {names}. "
            f"Or give a checkpoint path, or random:SEED."
        ) from None


def hub_checkpoint_path(url: str) -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _cached_checkpoint(arch: str, name: str, allow_download: bool,
                       no_download_why: str = "downloads are disabled") -> tuple[Path, str]:
    """``(path, sha256)`` of torchvision's checkpoint in the hub cache, downloaded first if it is
    missing and downloads are allowed; the digest is checked."""
    url = _enum_url(arch, name)
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
    _check_digest(arch, cached, digest)
    return cached, digest


def _load_pretrained(arch: str, name: str, allow_download: bool, no_download_why: str = "downloads are disabled"):
    import torch

    cached, digest = _cached_checkpoint(arch, name, allow_download, no_download_why)
    return torch.load(cached, map_location="cpu", weights_only=True), digest


def _missing_weights_message(arch, name, cached, why):
    return (
        f"weights {arch} {name} are not in torch's hub cache ({cached}) and {why}. "
        f"Fix: copy {cached.name} there (or point TORCH_HOME at a cache holding it), "
        f"or set model.weights to a local checkpoint path; for a test run use model.weights: random:0."
    )


def _is_torchvision_file(arch: str, path: Path, digest: str) -> bool:
    """True when the file is one of torchvision's published checkpoints of ``arch``, judged by its
    name's expected digest or else any published prefix (a renamed file)."""
    expected = _expected_digest(arch, path.name)
    if expected is not None:
        return digest.startswith(expected)
    return any((exp := _expected_digest(arch, os.path.basename(url))) and digest.startswith(exp)
               for url in weights_files(arch).values())


def _check_digest(arch: str, path: Path, digest: str) -> None:
    if _is_torchvision_file(arch, path, digest):
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


def is_checkpoint_path(weights: str) -> bool:
    """Whether a weights spec names a file (rather than a torchvision enum name or random:SEED)."""
    return os.sep in weights or weights.endswith(CHECKPOINT_SUFFIXES)


def _checkpoint_file(weights: str) -> Path | None:
    """The checkpoint a weights spec names (it must exist), or None for an enum name."""
    if not is_checkpoint_path(weights):
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"model.weights checkpoint {path} does not exist. Fix: correct the path, or use "
            f"IMAGENET1K_V1 (torch hub cache) or random:SEED."
        )
    return path


def random_seed(weights: str) -> int | None:
    """The seed of a ``random:SEED`` spec, None for any other spec."""
    if not weights.startswith("random:"):
        return None
    try:
        return int(weights.split(":", 1)[1])
    except ValueError:
        raise WeightsError(f"model.weights '{weights}': random weights need an integer seed, e.g. random:0.") from None


def check_weights_spec(arch: str, weights: str, checkpoint: str = "torchvision") -> None:
    """What can be said of a weights spec without reading any file: a known arch, an integer random
    seed, an enum name torchvision offers for the arch, and ``checkpoint: any`` only with a file."""
    weights = str(weights)
    check_arch(arch)
    if checkpoint not in CHECKPOINT_MODES:
        raise WeightsError(f"model.checkpoint '{checkpoint}' unknown; one of {', '.join(CHECKPOINT_MODES)}.")
    path = is_checkpoint_path(weights)
    if timm_models.is_timm(arch):
        return timm_weights.check_spec(arch, weights, checkpoint, path, random_seed(weights))
    if checkpoint == "any" and not path:
        raise WeightsError(
            f"model.checkpoint: any is for a checkpoint file, but model.weights is '{weights}'. Fix: set "
            f"model.weights to the file's path, or model.checkpoint back to torchvision."
        )
    if random_seed(weights) is None and not path:
        _enum_url(arch, weights)


# -- checkpoints of one's own (model.checkpoint: any) ----------------------------------------------------


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
        return (f"it holds the Python object {pickled.group(1)}, and loading that would run code from the file; "
                f"it was not loaded")
    if text.startswith("Weights only load failed"):
        return "it holds Python objects besides tensors, and loading them would run code from the file; it was not loaded"
    return (text.splitlines()[0][:200] if text else type(exc).__name__)


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
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and torch.is_tensor(v)} if isinstance(obj, dict) else {}
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
                tensors = {k[len(prefix):]: v for k, v in tensors.items()}
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
    misshapen = [f"{k} {list(state[k].shape)} (expected {list(expected[k].shape)})"
                 for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = [f"{what} {_listed(keys)}" for what, keys in
                (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", misshapen)) if keys]
    if problems:
        raise WeightsError(
            f"model.weights checkpoint {where} does not fit {arch}: {'; '.join(problems)}. Fix: give a {arch} "
            f"checkpoint (understood: a 'state_dict' or 'model' entry, keys prefixed 'module.' or 'model.')."
        )


def _check_custom_checkpoint(arch: str, path: Path) -> None:
    """Read the file and match its keys against ``arch`` (built on the meta device: no memory)."""
    from resstream.model.structure import build_on_meta

    state = read_checkpoint(path)
    model = build_on_meta(arch)
    check_state_dict_fits(model, state, arch, path)
    check_finite(state, path)


@functools.lru_cache(maxsize=4)
def _cached_file_sha256(path: str, mtime_ns: int, size: int) -> str:
    return file_sha256(path)


# -- before any job, and in every job --------------------------------------------------------------------


def missing_hub_file(arch: str, weights: str) -> Path | None:
    """The hub-cache path of an enum name's file when it is not there yet, else None."""
    if random_seed(weights) is not None or is_checkpoint_path(weights):
        return None
    if timm_models.is_timm(arch):
        return None if timm_weights.cached_hub_file(arch) else timm_weights.repo_cache_path(arch)
    cached = hub_checkpoint_path(_enum_url(arch, weights))
    return None if cached.exists() else cached


def check_weights_available(arch: str, weights: str, allow_download: bool, fetch: bool = True,
                            checkpoint: str = "torchvision") -> None:
    """Check, before any job runs, that ``load_model`` will find the weights: the checkpoint or
    cached hub file exists and has the right sha256, or (``checkpoint: any``) holds a state dict
    that fits ``arch``.  A missing hub file with downloads allowed is downloaded here, once: an
    offline machine stops before any job (and before Snakemake removes outdated outputs), and
    parallel jobs never race to fetch the same file; on a cluster the main process runs where it
    was started (usually a login node with a network).  ``fetch=False`` (a dry run) only checks
    what is there: a missing hub file with downloads allowed passes (see :func:`missing_hub_file`).
    Raises :class:`WeightsError`."""
    weights = str(weights)
    check_weights_spec(arch, weights, checkpoint)
    if random_seed(weights) is not None:
        return
    path = _checkpoint_file(weights)
    if timm_models.is_timm(arch):
        return timm_weights.check_file(arch, path) if path else timm_weights.fetch_pretrained(arch, allow_download, fetch)
    if path is not None:
        if checkpoint == "any":
            _check_custom_checkpoint(arch, path)
        else:
            _check_digest(arch, path, file_sha256(path))
        return
    if not fetch and allow_download and missing_hub_file(arch, weights) is not None:
        return  # a dry run: the real run fetches it
    _cached_checkpoint(arch, weights, allow_download)


def _load_checkpoint_file(model: torch.nn.Module, arch: str, path: Path, checkpoint: str) -> tuple[str, str]:
    """Load a checkpoint file into ``model``; return ``(kind, file sha256)``."""
    import torch

    digest = file_sha256(path)
    if checkpoint == "any" and not _is_torchvision_file(arch, path, digest):
        state = read_checkpoint(path)
        check_state_dict_fits(model, state, arch, path)
        check_finite(state, path)
        model.load_state_dict(state)
        return "custom", digest
    _check_digest(arch, path, digest)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return "checkpoint", digest


def _build_torchvision(arch: str, weights: str, seed: int | None, allow_download: bool, checkpoint: str,
                       no_download_why: str):
    """``(model, kind, file sha256)`` of a torchvision arch."""
    import torch
    import torchvision

    builder = getattr(torchvision.models, arch)
    if seed is not None:
        torch.manual_seed(seed)
        return builder(weights=None), "random", None
    model = builder(weights=None)
    path = _checkpoint_file(weights)
    if path is not None:
        return (model, *_load_checkpoint_file(model, arch, path, checkpoint))
    state, file_digest = _load_pretrained(arch, weights, allow_download, no_download_why)
    model.load_state_dict(state)
    return model, "pretrained", file_digest


def load_model(arch: str = "resnet18", weights: str = "IMAGENET1K_V1", allow_download: bool = True,
               checkpoint: str = "torchvision", no_download_why: str = "downloads are disabled"):
    """Return ``(model, identity)``: the network in eval mode with frozen weights."""
    weights = str(weights)
    check_weights_spec(arch, weights, checkpoint)
    seed = random_seed(weights)
    extra = {}
    if timm_models.is_timm(arch):
        model, kind, file_digest = timm_weights.build(arch, weights, seed, _checkpoint_file(weights), allow_download)
        extra = timm_weights.identity_fields(arch)
    else:
        model, kind, file_digest = _build_torchvision(arch, weights, seed, allow_download, checkpoint, no_download_why)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    identity = WeightsIdentity(
        arch=arch,
        source=weights,
        kind=kind,
        state_dict_sha256=state_dict_sha256(model.state_dict()),
        file_sha256=file_digest,
        **extra,
    )
    return model, identity


def model_param(model_cfg: dict) -> dict:
    """What the rules that load the network pass as their ``model`` param: the architecture, the
    weights spec and how a checkpoint is read, and for a checkpoint of one's own
    (``model.checkpoint: any``) also the file's sha256, since a retrained file may keep its path
    (torchvision's files are fixed by their digest).  New weights therefore rerun those jobs."""
    param = {"arch": model_cfg["arch"], "weights": str(model_cfg["weights"]), "checkpoint": model_cfg.get("checkpoint", "torchvision")}
    weights = param["weights"]
    if param["checkpoint"] == "any" and os.path.isfile(weights):
        st = os.stat(weights)
        param["file_sha256"] = _cached_file_sha256(os.path.abspath(weights), st.st_mtime_ns, st.st_size)
    return param


def load_model_param(param: dict):
    """:func:`load_model` in a job, from its ``model`` param (:func:`model_param`).  A job never
    downloads: Snakemake's main process fetched missing hub weights before the first job."""
    return load_model(param["arch"], param["weights"], allow_download=False, checkpoint=param["checkpoint"],
                      no_download_why="jobs never download them (Snakemake's main process fetches missing weights "
                                      "before the first job, into its own cache; this job sees another one)")


def load_configured_model(model_cfg: dict):
    """:func:`load_model` with the config's ``model`` section (arch, weights, allow_download, checkpoint)."""
    return load_model(model_cfg["arch"], model_cfg["weights"], model_cfg["allow_download"],
                      model_cfg.get("checkpoint", "torchvision"))
