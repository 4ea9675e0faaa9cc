"""Where every stage writes, in one place (rules, scripts, later stages and tests use these).

Layout under ``results`` (config key):

* ``model_card.json|csv``                         stage 0, model card
* ``fv/{layer}/{chunk}/fv.h5``                     FV stage: one folder per (layer, channel chunk)
* ``fv/{layer}/{chunk}/unit{c:04d}.png``           the 8-bit FV of channel c (what measurement reads)
* ``fv_channel_chunks/{layer}/{chunk}/``          channel-objective FVs for the atlas, same layout
* ``atlas/index.html``, ``atlas/{block}/``         the unit atlas (static HTML)
* ``activations/activations.h5``                   dataset stage: one file, all layers
* ``activations/exemplars/{layer}/unit{c:04d}.png`` 3x3 grid of a unit's top-9 images
* ``analysis/...``, ``figures/...``                analyses and figures
* ``logs/...``                                     one log per job
"""

from __future__ import annotations

import os


def unit_png_name(channel: int) -> str:
    return f"unit{channel:04d}.png"


def fv_chunk_dir(results: str, layer: str, chunk: str) -> str:
    return os.path.join(results, "fv", layer, chunk)


def fv_chunk_h5(results: str, layer: str, chunk: str) -> str:
    return os.path.join(fv_chunk_dir(results, layer, chunk), "fv.h5")


def fv_png(results: str, layer: str, chunk: str, channel: int) -> str:
    return os.path.join(fv_chunk_dir(results, layer, chunk), unit_png_name(channel))


def activations_h5(results: str) -> str:
    return os.path.join(results, "activations", "activations.h5")


def exemplar_grid(results: str, layer: str, channel: int) -> str:
    return os.path.join(results, "activations", "exemplars", layer, unit_png_name(channel))


def channel_fv_chunk_dir(results: str, layer: str, chunk: str) -> str:
    return os.path.join(results, "fv_channel_chunks", layer, chunk)


def atlas_dir(results: str) -> str:
    return os.path.join(results, "atlas")


def atlas_block_dir(results: str, block: str) -> str:
    return os.path.join(atlas_dir(results), block)
