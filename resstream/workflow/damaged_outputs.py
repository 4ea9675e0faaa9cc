"""Finished HDF5 outputs that can no longer be read (truncated in place by disk trouble, an
interrupted copy), found cheaply before Snakemake plans, and moved aside, never deleted.

A job reading such a file fails, but only after Snakemake has removed the finished outputs it
meant to redo, and again at every rerun.  The workflow's pre-flight
(:func:`resstream.workflow.smk.move_damaged_outputs_or_exit`) checks the files here first.

The checks live in this module, not beside the code that writes the files
(:mod:`resstream.activations.store`, :mod:`resstream.fv.job`): a job's code fingerprint hashes
every module it imports, and no job imports this one, so that it can change without rerunning
finished jobs.
"""

from __future__ import annotations

import os
import re
import time

from resstream.base.paths import activations_h5, channel_fv_chunk_dir, fv_chunk_dir

# what every FV chunk folder's fv.h5 holds (written by resstream.fv.job)
FV_H5_DATASETS = ("channels", "status", "final_activation", "seed", "curve", "image")
# what a finished activations file holds (the layout: resstream.activations.store)
ACTIVATIONS_DATASETS = ("images/path", "images/ok", "layers", "topk")


def find_damaged(study) -> list[tuple[str, str, str]]:
    """``(output, damaged file, why)`` of every finished HDF5 output of ``study`` (a
    :class:`~resstream.workflow.plan.StudyPlan`) that jobs read and that cannot be read: the activations
    file and the FV and channel-FV chunk folders' ``fv.h5`` (the study's own outputs, not a search
    of the results folder)."""
    results = study.config["results"]
    found = []
    h5 = activations_h5(results)
    if os.path.exists(h5) and (why := activations_damage(h5)):
        found.append((h5, h5, why))
    folders = [fv_chunk_dir(results, layer, c.name) for layer in study.layers for c in study.chunks(layer)]
    folders += [
        channel_fv_chunk_dir(results, layer, c.name)
        for layer in study.channel_fv_layers()
        for c in study.channel_fv_chunks(layer)
    ]
    for folder in folders:
        if os.path.isdir(folder) and (why := fv_folder_damage(folder)):
            found.append((folder, os.path.join(folder, "fv.h5"), why))
    return found


def hdf5_damage(path: str, datasets) -> str | None:
    """Why the finished HDF5 file ``path`` cannot be read (None when it can): it does not open
    (truncated or overwritten in place), lacks one of ``datasets``, or an object's header is
    unreadable.  Cheap: headers only, no data."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            missing = [name for name in datasets if name not in f]
            if missing:
                return f"it lacks {', '.join(missing)}"
            f.visititems(lambda name, obj: None)  # every object's header
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        return _hdf5_reason(exc)
    return None


def _hdf5_reason(exc: Exception) -> str:
    """HDF5's reason without its wrapper: ``Unable to synchronously open file (truncated file:
    eof = ...)`` gives ``truncated file: eof = ...``."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    found = re.fullmatch(r"Unable to [^(]*\((.*)\)", lines[0])
    return found.group(1) if found else lines[0]


def activations_damage(path: str) -> str | None:
    """Why the activations file ``path`` cannot be read (None when it can).  A file under the final
    name was published complete, so one that is not marked complete is damaged too."""
    import h5py

    from resstream.activations.store import FORMAT

    reason = hdf5_damage(path, ACTIVATIONS_DATASETS)
    if reason is None:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT or not bool(f.attrs.get("complete", False)):
                reason = "it is not marked complete"
    return reason


def fv_folder_damage(folder: str) -> str | None:
    """Why the ``fv.h5`` of the FV chunk folder ``folder`` cannot be read (None when it can, or when
    the folder is empty: nothing finished there)."""
    h5 = os.path.join(folder, "fv.h5")
    if not os.path.exists(h5):
        return "the file is missing" if os.listdir(folder) else None
    return hdf5_damage(h5, FV_H5_DATASETS)


def damaged_name(path: str) -> str:
    """``{path}.damaged-<UTC time>``, a name not yet taken: where a damaged output is kept."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name, n = f"{path}.damaged-{stamp}", 1
    while os.path.lexists(name):
        n += 1
        name = f"{path}.damaged-{stamp}-{n}"
    return name


def move_aside(path: str) -> str:
    """Rename the damaged output ``path`` (file or folder) to :func:`damaged_name`; never deletes."""
    aside = damaged_name(path)
    os.rename(path, aside)
    return aside
