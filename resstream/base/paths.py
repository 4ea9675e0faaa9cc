"""Where every stage writes, in one place (rules, scripts, later stages and tests use these).

Layout under ``results`` (config key):

* ``model_card.json|csv``                         stage 0, model card
* ``fv/{layer}/{chunk}/fv.h5``                     FV stage: one folder per (layer, channel chunk)
* ``fv/{layer}/{chunk}/unit{c:04d}.png``           the 8-bit FV of channel c (what measurement reads)
* ``channel_fv/{layer}/{chunk}/``                 channel-objective FVs (whole-map mean; atlas, Figs 1
                                                   and 6), same layout (``fv_channel_chunks/`` before:
                                                   :mod:`resstream.workflow.renamed_outputs`)
* ``atlas/index.html``, ``atlas/{block}/``         the unit atlas (static HTML)
* ``activations/activations.h5``                   dataset stage: one file, all layers
* ``activations/exemplars/{layer}/unit{c:04d}.png`` 3x3 grid of a unit's top-9 images (one folder,
                                                   and one job, per layer, with its ``exemplars.csv``)
* ``analysis/...``, ``figures/...``                analyses and figures
* ``ablation/...``                                 the lesion stage (when on): ``ablation.csv``,
                                                   ``lesion_ratios.csv`` (the atlas and scorecard
                                                   read it), ``mix_classes.csv``, ``ablation.png``
* ``logs/...``                                     one log per job
"""

from __future__ import annotations

import os


def unit_png_name(channel: int) -> str:
    return f"unit{channel:04d}.png"


def fv_chunk_dir(results: str, layer: str, chunk: str) -> str:
    return os.path.join(results, "fv", layer, chunk)


FV_FILE_NAME = "fv.h5"  # beside a chunk's PNGs; written and read by resstream.fv.fv_file


def fv_chunk_h5(results: str, layer: str, chunk: str) -> str:
    return os.path.join(fv_chunk_dir(results, layer, chunk), FV_FILE_NAME)


def fv_png(results: str, layer: str, chunk: str, channel: int) -> str:
    return os.path.join(fv_chunk_dir(results, layer, chunk), unit_png_name(channel))


def activations_h5(results: str) -> str:
    return os.path.join(results, "activations", "activations.h5")


EXEMPLAR_LIST = "exemplars.csv"  # in each layer's exemplar folder: every grid's images and activations


def exemplar_dir(results: str, layer: str) -> str:
    return os.path.join(results, "activations", "exemplars", layer)


def exemplar_grid(results: str, layer: str, channel: int) -> str:
    return os.path.join(exemplar_dir(results, layer), unit_png_name(channel))


def channel_fv_chunk_dir(results: str, layer: str, chunk: str) -> str:
    return os.path.join(results, "channel_fv", layer, chunk)


def atlas_dir(results: str) -> str:
    return os.path.join(results, "atlas")


def atlas_block_dir(results: str, block: str) -> str:
    return os.path.join(atlas_dir(results), block)


def dictionary_dir(results: str, name: str) -> str:
    """A crosscoder's folder: a block's (``"2.1"``) or, with ``dictionary.scope: stage``, a network
    stage's (``"stage2"``)."""
    return os.path.join(results, "dictionary", name)


def dictionary_pictures_dir(results: str, block: str) -> str:
    """A block's feature FVs and exemplar grids (the dictionary stage's pictures)."""
    return os.path.join(results, "dictionary_pictures", block)


def ablation_file(results: str, name: str) -> str:
    """A file of the ablation stage, e.g. ``lesion_ratios.csv``."""
    return os.path.join(results, "ablation", name)


def chunk_unit_pngs(chunk_dirs) -> dict[tuple[str, int], str]:
    """``{(layer, channel): png}`` in FV chunk folders ``.../{layer}/{chunk}/unit{c:04d}.png`` (the
    folders a job was given as input, never a search of the results folder)."""
    return {
        key: path
        for d in chunk_dirs
        for key, path in _unit_pngs(d, os.path.basename(os.path.dirname(os.path.normpath(d))))
    }


def layer_unit_pngs(layer_dirs) -> dict[tuple[str, int], str]:
    """``{(layer, channel): png}`` in per-layer folders ``.../{layer}/unit{c:04d}.png`` (exemplar grids)."""
    return {key: path for d in layer_dirs for key, path in _unit_pngs(d, os.path.basename(os.path.normpath(d)))}


def _unit_pngs(folder: str, layer: str):
    for name in sorted(os.listdir(folder)):
        if name.startswith("unit") and name.endswith(".png") and name[4:-4].isdigit():
            yield (layer, int(name[4:-4])), os.path.join(folder, name)
