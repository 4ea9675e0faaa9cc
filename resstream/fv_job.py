"""One FV job: a chunk of channels of one layer, written atomically to its own folder.

The folder holds ``unit{c:04d}.png`` per channel (the 8-bit image measurement reads) and
``fv.h5`` (float images, final activation, per-step curve, seed, status, settings, weights).  It
is assembled under a temporary name and renamed into place only when complete, so a killed job
never leaves a folder that looks finished.
"""

from __future__ import annotations

import json
import logging
import os

import h5py
import numpy as np
from PIL import Image

from .blocks import parse_layer
from .config import FVSettings, Study
from .device import resolve_device
from .fv import FVError, FVResult, render_units
from .outputs import partial_dir, publish_dir, remove_stale_partials
from .paths import unit_png_name
from .weights import load_configured_model

log = logging.getLogger("resstream.fv")


def write_fv_folder(result, out_dir: str, weights: dict, layer_tap: str) -> None:
    tmp = partial_dir(out_dir)
    for c, arr in zip(result.channels, result.png_arrays()):
        Image.fromarray(arr).save(os.path.join(tmp, unit_png_name(c)))
    with h5py.File(os.path.join(tmp, "fv.h5"), "w") as f:
        f["channels"] = np.asarray(result.channels, dtype=np.int64)
        f["status"] = np.asarray(result.status, dtype=object).astype("S")
        f["final_activation"] = result.final_activation
        f["seed"] = np.asarray(result.seeds, dtype=np.int64)
        f.create_dataset("curve", data=result.curve, compression="gzip")
        f.create_dataset("image", data=result.images, compression="gzip", chunks=(1, 3, 224, 224))
        f.attrs["layer"] = result.layer
        f.attrs["tap"] = layer_tap
        f.attrs["objective"] = result.objective
        f.attrs["settings"] = json.dumps(result.settings)
        f.attrs["weights"] = json.dumps(weights)
        f.attrs["seconds"] = result.seconds
    publish_dir(tmp, out_dir, FVError(f"{out_dir} already holds FV results; delete it (or let snakemake rerun the job) to recompute"))


def read_fv_status(out_dir: str) -> dict[int, str]:
    with h5py.File(os.path.join(out_dir, "fv.h5"), "r") as f:
        return {int(c): s.decode() for c, s in zip(f["channels"][:], f["status"][:])}


def run_fv_chunk(config: dict, layer: str, chunk_name: str, out_dir: str, objective: str = "center", gpus: int | None = None) -> dict:
    """Render one chunk of a layer's units into ``out_dir``.  ``gpus``: what the Snakemake job declared
    (:func:`resstream.device.resolve_device`)."""
    study = Study(config)
    if layer not in study.layers:
        raise FVError(f"layer '{layer}' is not an FV layer of this study; layers: {', '.join(study.layers)}")
    # Channel-objective chunks (the atlas) cover only the units of the roles atlas.channel_fvs names.
    chunk = study.chunk(layer, chunk_name) if objective == "center" else study.chunk(layer, chunk_name, study.channel_fv_roles)
    device = resolve_device(config["model"]["device"], gpus)
    model, identity = load_configured_model(config["model"])
    result = render_fv_folder(
        model.to(device), identity, study.blocks, layer, list(chunk.channels), study.fv_settings(layer), out_dir,
        objective=objective, log_every=config["fv"]["log_every"], what=f"{layer} {chunk.name}",
    )
    return {"channels": result.channels, "status": result.status}


def render_fv_folder(model, identity, blocks, layer: str, channels: list[int], settings: FVSettings, out_dir: str,
                     objective: str = "center", log_every: int = 50, what: str | None = None) -> FVResult:
    """Render ``channels`` of ``layer`` with ``settings`` into the folder ``out_dir`` (the FV stage's
    chunk jobs and ``resstream fv`` both come here: same seeds, same files)."""
    remove_stale_partials(out_dir)
    ref = parse_layer(blocks, layer)
    device = next(model.parameters()).device
    log.info(
        "FV (%s) %s: %d channels %s on %s, %s; weights %s",
        objective, what or layer, len(channels), channels, device, settings.as_params(), identity.label,
    )

    def progress(step, steps, elapsed, values):
        rate = step / max(elapsed, 1e-9)
        log.info(
            "step %d/%d  %.2f steps/s  ETA %.0f s  mean objective %.3f",
            step, steps, rate, (steps - step) / max(rate, 1e-9), float(np.nanmean(values)) if np.isfinite(values).any() else float("nan"),
        )

    result = render_units(
        model, blocks, layer, ref, channels,
        steps=settings.steps, lr=settings.lr, jitter=settings.jitter, hook=settings.hook, seed=settings.seed,
        rf_crop=settings.rf_crop, bf16=settings.bf16, microbatch=settings.microbatch,
        channels_last=settings.channels_last, tf32=settings.tf32, objective=objective,
        log_every=log_every, progress=progress,
    )
    for c, status in zip(result.channels, result.status):
        if status == "nan":
            log.warning(
                "unit %s channel %d produced NaN during optimisation (lr %s): recorded as 'nan'; "
                "fix: lower fv.lr (or fv.overrides) and rerun this chunk", layer, c, settings.lr,
            )
        elif status == "dead":
            log.warning("unit %s channel %d never activated above 0: recorded as 'dead'", layer, c)
    write_fv_folder(result, out_dir, identity.as_dict(), f"{ref.block}:{ref.kind}")
    log.info("done in %.1f s: %s", result.seconds, dict(zip(result.channels, result.status)))
    return result


def run_channel_fvs(config: dict, units: dict[str, list[int]], out_dir: str, gpus: int | None = None) -> dict:
    """Channel-objective FVs (mean of the whole channel map) for display in Figs 1 and 6; the
    author never produced them.  ``units``: {layer: [channels]}.  Writes ``out_dir/{layer}/``
    folders like the centre-FV chunks (``unit{c:04d}.png`` + ``fv.h5``), all at once."""
    study = Study(config)
    device = resolve_device(config["model"]["device"], gpus)
    model, identity = load_configured_model(config["model"])
    model = model.to(device)
    remove_stale_partials(out_dir)
    tmp = partial_dir(out_dir)
    done = {}
    for layer, channels in sorted(units.items()):
        if layer not in study.layers:
            raise FVError(f"channel FV asked for layer '{layer}', which is not an FV layer of this study")
        settings = study.fv_settings(layer)
        ref = study.layer_ref(layer)
        log.info("channel FV %s: channels %s, %s", layer, channels, settings.as_params())
        result = render_units(
            model, study.blocks, layer, ref, sorted(set(channels)),
            steps=settings.steps, lr=settings.lr, jitter=settings.jitter, hook=settings.hook, seed=settings.seed,
            rf_crop=False, bf16=settings.bf16, microbatch=settings.microbatch,
            channels_last=settings.channels_last, tf32=settings.tf32, objective="channel",
            log_every=config["fv"]["log_every"],
        )
        write_fv_folder(result, os.path.join(tmp, layer), identity.as_dict(), f"{ref.block}:{ref.kind}")
        done[layer] = dict(zip(result.channels, result.status))
    publish_dir(tmp, out_dir, FVError(f"{out_dir} already holds channel FVs; delete it (or let snakemake rerun the job) to recompute"))
    log.info("channel FVs done: %s", done)
    return done
