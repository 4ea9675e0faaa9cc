"""One FV job: a chunk of channels of one layer, written atomically to its own folder.

The folder holds ``unit{c:04d}.png`` per channel (the 8-bit image measurement reads) and
``fv.h5`` (:mod:`resstream.fv.fv_file`: float images, final activation, per-step curve, seed, status,
settings, weights).  It is assembled under a temporary name and renamed into place only when
complete, so a killed job never leaves a folder that looks finished.
"""

from __future__ import annotations

import logging
import os
import shutil

import numpy as np
from PIL import Image

from resstream.base.disk_space import DiskSpaceError, check_free_space, disk_full_named
from resstream.base.outputs import partial_dir, publish_dir, remove_stale_partials
from resstream.base.paths import unit_png_name
from resstream.fv.fv_file import fv_file_path, write_fv_file
from resstream.fv.render import FVError, FVResult, render_units
from resstream.fv.settings import FVSettings
from resstream.model.blocks import parse_layer
from resstream.model.device import resolve_device
from resstream.model.preprocessing import for_arch
from resstream.model.walk import model_blocks
from resstream.model.weights import load_model_param

log = logging.getLogger("resstream.fv.render")


PNG_BYTES = 224 * 224 * 3 + (16 << 10)  # an 8-bit RGB FV: raw size plus PNG overhead (noise barely compresses)
IMAGE_BYTES = 3 * 224 * 224 * 4  # the float image in fv.h5, before gzip


def folder_bytes(units: int, steps: int) -> int:
    """Upper bound of one chunk folder's size: per unit its PNG, float image and per-step curve."""
    return units * (PNG_BYTES + IMAGE_BYTES + steps * 4 + 64) + (64 << 10)


def write_fv_folder(result, out_dir: str, weights: dict, layer_tap: str) -> None:
    tmp = partial_dir(out_dir)
    try:
        with disk_full_named(out_dir):
            _write_files(result, tmp, weights, layer_tap)
    except DiskSpaceError:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written stays behind
        raise
    publish_dir(
        tmp,
        out_dir,
        FVError(f"{out_dir} already holds FV results; delete it (or let snakemake rerun the job) to recompute"),
    )


def _write_files(result, tmp: str, weights: dict, layer_tap: str) -> None:
    for c, arr in zip(result.channels, result.png_arrays()):
        Image.fromarray(arr).save(os.path.join(tmp, unit_png_name(c)))
    write_fv_file(fv_file_path(tmp), result, weights, layer_tap)


def _refuse_all_non_finite(result: FVResult, what: str, settings: FVSettings) -> None:
    """A chunk whose every unit ended non-finite holds no FV at all: the job fails (and writes
    nothing) rather than publish NaN images that would pass as finished work.  A chunk with some
    non-finite units is written, each recorded with status 'nan' in fv.h5."""
    if result.channels and all(status == "nan" for status in result.status):
        raise FVError(
            f"FV chunk {what}: every unit (layer {result.layer}, channels {list(result.channels)}) ended "
            f"non-finite (NaN or Inf) during optimisation; nothing was written. Fix: lower fv.lr (now "
            f"{settings.lr}; per layer: fv.overrides) or check the weights for NaN or Inf, then rerun"
        )


def run_fv_chunk(
    model: dict,
    layer: str,
    channels: list[int],
    settings: FVSettings | dict,
    out_dir: str,
    *,
    device: str,
    log_every: int,
    objective: str = "center",
    gpus: int | None = None,
) -> dict:
    """The FV chunk job: render ``channels`` of ``layer`` with ``settings`` (an
    :class:`~resstream.fv.settings.FVSettings`, or the rule's param :meth:`~FVSettings.as_params`) into ``out_dir``.  ``model``: the rule's
    model param (:func:`resstream.model.weights.model_param`); ``device``, ``gpus`` (what the job
    declared, :func:`resstream.model.device.resolve_device`) and ``log_every`` change how it runs, not
    what it writes."""
    settings = FVSettings.from_params(settings)
    check_free_space(
        out_dir,
        folder_bytes(len(channels), settings.steps),
        f"the FV chunk {out_dir} ({len(channels)} units x {settings.steps} steps)",
    )
    net, identity = load_model_param(model)
    net = net.to(resolve_device(device, gpus))
    result = render_fv_folder(
        net,
        identity,
        model_blocks(net),
        layer,
        list(channels),
        settings,
        out_dir,
        objective=objective,
        log_every=log_every,
        what=f"{layer} {os.path.basename(os.path.normpath(out_dir))}",
    )
    return {"channels": result.channels, "status": result.status}


def render_fv_folder(
    model,
    identity,
    blocks,
    layer: str,
    channels: list[int],
    settings: FVSettings,
    out_dir: str,
    log_every: int,
    objective: str = "center",
    what: str | None = None,
) -> FVResult:
    """Render ``channels`` of ``layer`` with ``settings`` into the folder ``out_dir`` (the FV stage's
    chunk jobs and ``resstream fv`` both come here: same seeds, same files)."""
    remove_stale_partials(out_dir)
    ref = parse_layer(blocks, layer)
    device = next(model.parameters()).device
    log.info(
        "FV (%s) %s: %d channels %s on %s, %s; weights %s",
        objective,
        what or layer,
        len(channels),
        channels,
        device,
        settings.as_params(),
        identity.label,
    )

    def progress(step, steps, elapsed, values):
        rate = step / max(elapsed, 1e-9)
        log.info(
            "step %d/%d  %.2f steps/s  ETA %.0f s  mean objective %.3f",
            step,
            steps,
            rate,
            (steps - step) / max(rate, 1e-9),
            float(np.nanmean(values)) if np.isfinite(values).any() else float("nan"),
        )

    result = render_units(
        model,
        blocks,
        layer,
        ref,
        channels,
        **settings.as_params(),
        objective=objective,
        log_every=log_every,
        progress=progress,
        preprocessing=for_arch(identity.arch),
    )
    _refuse_all_non_finite(result, what or layer, settings)
    for c, status in zip(result.channels, result.status):
        if status == "nan":
            log.warning(
                "unit %s channel %d produced NaN during optimisation (lr %s): recorded as 'nan'; "
                "fix: lower fv.lr (or fv.overrides) and rerun this chunk",
                layer,
                c,
                settings.lr,
            )
        elif status == "dead":
            log.warning("unit %s channel %d never activated above 0: recorded as 'dead'", layer, c)
    write_fv_folder(result, out_dir, identity.as_dict(), f"{ref.block}:{ref.tensor}")
    log.info("done in %.1f s: %s", result.seconds, dict(zip(result.channels, result.status)))
    return result


def fv_chunk_job(job, gpus: int | None = None) -> dict:
    """Entry point of an FV chunk job (``fv_chunk`` or ``fv_channel_chunk``; its spec:
    :mod:`resstream.fv.jobs`): the chunk's channels rendered into ``output.folder``.  ``job``: the
    Snakemake job or a :meth:`~resstream.base.job_spec.JobSpec.job`; ``gpus``: the GPUs it may use."""
    params = job.params
    return run_fv_chunk(
        params.model,
        job.wildcards.layer,
        params.channels,
        params.settings,
        job.output.folder,
        objective=params.objective,
        device=params.device,
        gpus=gpus,
        log_every=job.resources.log_every,
    )
