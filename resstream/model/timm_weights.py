"""A timm model's weights (``model.arch: timm:NAME``), loaded the timm way.

* ``pretrained``: the tag's weights through timm and the Hugging Face hub cache (``HF_HUB_CACHE``,
  else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``).  Snakemake's main process downloads a
  missing file once before any job; offline (``HF_HUB_OFFLINE=1`` or ``model.allow_download:
  false``) a missing file stops the run there with one line naming the cache path.  Jobs load the
  cached file itself (``pretrained_cfg_overlay=dict(file=...)``), so they never reach the network.
* a local file with ``model.checkpoint: any``: loaded by timm's own loader
  (``pretrained_cfg_overlay=dict(file=...)``: safetensors or torch files, ``state_dict`` / ``model``
  entries, ``module.`` prefixes, the model's checkpoint filter for original-format weights).
* ``random:SEED``: ``torch.manual_seed(SEED)`` then ``timm.create_model(NAME, pretrained=False)``.
"""

from __future__ import annotations

import os
from pathlib import Path

from resstream.model import timm_models

PRETRAINED = "pretrained"
# the files timm looks for in a model's hub repository, in its order of preference
HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def hub_cache() -> Path:
    """The Hugging Face hub cache, read from the environment now (huggingface_hub reads it at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _repo(arch: str) -> str:
    from resstream.model.checkpoint_files import WeightsError

    repo = timm_models.preprocessing(arch).get("hf_hub_id")
    if not repo:
        raise WeightsError(
            f"model.weights pretrained: timm publishes no Hugging Face hub weights for {arch}. Fix: "
            f"use a tag that has them (resstream info {arch}), a checkpoint file with "
            f"model.checkpoint: any, or random:SEED."
        )
    return repo


def repo_cache_path(arch: str) -> Path:
    return hub_cache() / f"models--{_repo(arch).replace('/', '--')}"


def cached_hub_file(arch: str) -> Path | None:
    """The cached weights file of the arch's tag, None when the cache has none."""
    from huggingface_hub import try_to_load_from_cache

    for filename in HUB_FILES:
        found = try_to_load_from_cache(_repo(arch), filename, cache_dir=hub_cache())
        if isinstance(found, str):
            return Path(found)
    return None


def check_spec(arch: str, weights: str, checkpoint: str, is_file: bool, seed: int | None) -> None:
    from resstream.model.checkpoint_files import WeightsError

    timm_models.family_of(arch)
    if is_file and checkpoint != "any":
        raise WeightsError(
            f"model.weights {weights} for {arch}: timm publishes no sha256 list to check a file "
            f"against. Fix: set model.checkpoint: any to load it as a checkpoint of your own."
        )
    if not is_file and checkpoint == "any":
        raise WeightsError(
            f"model.checkpoint: any is for a checkpoint file, but model.weights is '{weights}'. Fix: "
            f"set model.weights to the file's path, or model.checkpoint back to torchvision."
        )
    if not is_file and seed is None and weights != PRETRAINED:
        raise WeightsError(
            f"model.weights '{weights}' does not fit {arch}: a timm model's weights are "
            f"'{PRETRAINED}' (the tag's, through the Hugging Face hub cache), a checkpoint file "
            f"with model.checkpoint: any, or random:SEED. Fix: set model.weights: {PRETRAINED}."
        )


def _missing_message(arch: str, why: str) -> str:
    return (
        f"weights {arch} pretrained are not in the Hugging Face hub cache ({repo_cache_path(arch)}) and {why}. "
        f"Fix: run once where the hub is reachable (without HF_HUB_OFFLINE=1), copy that cache folder here "
        f"(or point HF_HUB_CACHE at a cache holding it), or set model.weights to a local file with "
        f"model.checkpoint: any; for a test run use model.weights: random:0."
    )


def fetch_pretrained(arch: str, allow_download: bool, fetch: bool = True) -> Path | None:
    """The cached file, downloaded first when missing and allowed (``fetch=False``: a dry run, which
    only reports); offline with no cached file raises :class:`~resstream.model.checkpoint_files.WeightsError` naming the cache path."""
    from resstream.model.checkpoint_files import WeightsError

    cached = cached_hub_file(arch)
    if cached is not None:
        return cached
    if hub_offline() or not allow_download:
        why = "HF_HUB_OFFLINE is set" if hub_offline() else "model.allow_download is false"
        raise WeightsError(_missing_message(arch, why))
    if not fetch:
        return None
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(_repo(arch), HUB_FILES[0], cache_dir=hub_cache()))
    except Exception as exc:  # offline machines fail here (connection errors, missing file)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(_missing_message(arch, f"the download failed ({reason[:160]})")) from None


def _create_from_file(arch: str, path: Path, on_meta: bool = False):
    """``timm.create_model`` loading ``path`` through timm's own loader; a file that does not fit
    raises :class:`~resstream.model.checkpoint_files.WeightsError`."""
    import contextlib
    import warnings

    import torch

    from resstream.model.checkpoint_files import WeightsError

    name, _ = timm_models.split_name(arch)
    tag = timm_models.resolved_tag(arch)
    import timm

    try:
        with torch.device("meta") if on_meta else contextlib.nullcontext(), warnings.catch_warnings():
            # on meta, copying the file's tensors is a no-op that torch warns about once per tensor
            warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter")
            return timm.create_model(
                f"{name}.{tag}" if tag else name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path))
            ).eval()
    except Exception as exc:  # RuntimeError (keys, shapes), UnpicklingError, safetensors errors, ...
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise WeightsError(
            f"model.weights checkpoint {path} does not load into {arch} ({reason}). Fix: give a "
            f"{name} checkpoint (timm's or the original format timm converts, a state dict "
            f"under 'state_dict' or 'model' understood)."
        ) from None


def check_file(arch: str, path: Path) -> None:
    """Before any job: the file loads into the model built on the meta device (no memory)."""
    _create_from_file(arch, path, on_meta=True)


def build(arch: str, weights: str, seed: int | None, path: Path | None, allow_download: bool):
    """``(model, kind, file sha256)``."""
    import torch

    from resstream.model.checkpoint_files import file_sha256

    if seed is not None:
        torch.manual_seed(seed)
        return timm_models.build(timm_models.split_name(arch)[0]), "random", None
    kind = "custom" if path is not None else "timm"  # "timm": the tag's published weights
    path = path or fetch_pretrained(arch, allow_download)
    return _create_from_file(arch, path), kind, file_sha256(path)


def identity_fields(arch: str) -> dict:
    """What a timm model's outputs record besides the weights: the model and tag, and the
    preprocessing of its ``pretrained_cfg``."""
    name, _ = timm_models.split_name(arch)
    tag = timm_models.resolved_tag(arch)
    return {"timm_model": f"{name}.{tag}" if tag else name, "preprocessing": timm_models.preprocessing(arch)}
