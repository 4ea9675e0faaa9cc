"""Build a network (any supported residual family) and load its weights from one of three sources:
torchvision's published weights, a checkpoint file, or ``random:SEED`` (the spec:
:mod:`resstream.model.weights_spec`); every model comes with a :class:`WeightsIdentity` that
outputs record.  Also the checks run before any job (the weights are there, and fit) and the
``model`` param of the rules that load the network.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from resstream.model import timm_models, timm_weights
from resstream.model.checkpoint_files import check_finite, check_state_dict_fits, file_sha256, read_checkpoint
from resstream.model.torchvision_weights import (
    cached_checkpoint,
    check_digest,
    hub_checkpoint_path,
    is_torchvision_file,
    load_pretrained,
)
from resstream.model.weights_identity import WeightsIdentity, state_dict_sha256
from resstream.model.weights_spec import check_weights_spec, checkpoint_file, enum_url, is_checkpoint_path, random_seed

if TYPE_CHECKING:  # torch is imported where a network or a tensor is handled: checking a spec needs none
    import torch


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
    cached = hub_checkpoint_path(enum_url(arch, weights))
    return None if cached.exists() else cached


def check_weights_available(
    arch: str, weights: str, allow_download: bool, fetch: bool = True, checkpoint: str = "torchvision"
) -> None:
    """Check, before any job runs, that ``load_model`` will find the weights: the checkpoint or
    cached hub file exists and has the right sha256, or (``checkpoint: any``) holds a state dict
    that fits ``arch``.  A missing hub file with downloads allowed is downloaded here, once: an
    offline machine stops before any job (and before Snakemake removes outdated outputs), and
    parallel jobs never race to fetch the same file; on a cluster the main process runs where it
    was started (usually a login node with a network).  ``fetch=False`` (a dry run) only checks
    what is there: a missing hub file with downloads allowed passes (see :func:`missing_hub_file`).
    Raises :class:`~resstream.model.checkpoint_files.WeightsError`."""
    weights = str(weights)
    check_weights_spec(arch, weights, checkpoint)
    if random_seed(weights) is not None:
        return
    path = checkpoint_file(weights)
    if timm_models.is_timm(arch):
        return (
            timm_weights.check_file(arch, path) if path else timm_weights.fetch_pretrained(arch, allow_download, fetch)
        )
    if path is not None:
        if checkpoint == "any":
            _check_custom_checkpoint(arch, path)
        else:
            check_digest(arch, path, file_sha256(path))
        return
    if not fetch and allow_download and missing_hub_file(arch, weights) is not None:
        return  # a dry run: the real run fetches it
    cached_checkpoint(arch, weights, allow_download)


def _loadcheckpoint_file(model: torch.nn.Module, arch: str, path: Path, checkpoint: str) -> tuple[str, str]:
    """Load a checkpoint file into ``model``; return ``(kind, file sha256)``."""
    import torch

    digest = file_sha256(path)
    if checkpoint == "any" and not is_torchvision_file(arch, path, digest):
        state = read_checkpoint(path)
        check_state_dict_fits(model, state, arch, path)
        check_finite(state, path)
        model.load_state_dict(state)
        return "custom", digest
    check_digest(arch, path, digest)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return "checkpoint", digest


def _build_torchvision(
    arch: str, weights: str, seed: int | None, allow_download: bool, checkpoint: str, no_download_why: str
):
    """``(model, kind, file sha256)`` of a torchvision arch."""
    import torch
    import torchvision

    builder = getattr(torchvision.models, arch)
    if seed is not None:
        torch.manual_seed(seed)
        return builder(weights=None), "random", None
    model = builder(weights=None)
    path = checkpoint_file(weights)
    if path is not None:
        return (model, *_loadcheckpoint_file(model, arch, path, checkpoint))
    state, file_digest = load_pretrained(arch, weights, allow_download, no_download_why)
    model.load_state_dict(state)
    return model, "pretrained", file_digest


def load_model(
    arch: str = "resnet18",
    weights: str = "IMAGENET1K_V1",
    allow_download: bool = True,
    checkpoint: str = "torchvision",
    no_download_why: str = "downloads are disabled",
):
    """Return ``(model, identity)``: the network in eval mode with frozen weights."""
    weights = str(weights)
    check_weights_spec(arch, weights, checkpoint)
    seed = random_seed(weights)
    extra = {}
    if timm_models.is_timm(arch):
        model, kind, file_digest = timm_weights.build(arch, weights, seed, checkpoint_file(weights), allow_download)
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
    param = {
        "arch": model_cfg["arch"],
        "weights": str(model_cfg["weights"]),
        "checkpoint": model_cfg.get("checkpoint", "torchvision"),
    }
    weights = param["weights"]
    if param["checkpoint"] == "any" and os.path.isfile(weights):
        st = os.stat(weights)
        param["file_sha256"] = _cached_file_sha256(os.path.abspath(weights), st.st_mtime_ns, st.st_size)
    return param


def load_model_param(param: dict):
    """:func:`load_model` in a job, from its ``model`` param (:func:`model_param`).  A job never
    downloads: Snakemake's main process fetched missing hub weights before the first job."""
    return load_model(
        param["arch"],
        param["weights"],
        allow_download=False,
        checkpoint=param["checkpoint"],
        no_download_why="jobs never download them (Snakemake's main process fetches missing weights "
        "before the first job, into its own cache; this job sees another one)",
    )


def load_configured_model(model_cfg: dict):
    """:func:`load_model` with the config's ``model`` section (arch, weights, allow_download, checkpoint)."""
    return load_model(
        model_cfg["arch"], model_cfg["weights"], model_cfg["allow_download"], model_cfg.get("checkpoint", "torchvision")
    )
