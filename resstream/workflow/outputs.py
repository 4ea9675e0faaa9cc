"""Outputs that appear complete or not at all: a job builds a folder or file under a temporary name
and renames it into place when done, so a killed job never leaves an output that looks finished."""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import time

log = logging.getLogger("resstream.workflow.outputs")


def partial_dir(out_dir: str) -> str:
    """A fresh ``{out_dir}.partial-PID`` folder to build ``out_dir`` in."""
    tmp = f"{out_dir}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    return tmp


def publish_dir(tmp: str, out_dir: str, refusal: Exception) -> None:
    """Rename ``tmp`` to ``out_dir``.  An empty ``out_dir`` (Snakemake creates directory outputs'
    parents, a user may create the folder) is replaced; a non-empty one is finished work and is
    never silently replaced: ``tmp`` is removed and ``refusal`` raised (Snakemake itself removes
    outputs it means to redo)."""
    if os.path.isdir(out_dir):
        if os.listdir(out_dir):
            shutil.rmtree(tmp)
            raise refusal
        os.rmdir(out_dir)
    os.replace(tmp, out_dir)


def remove_stale_partials(out_dir: str) -> None:
    """Delete ``{out_dir}.partial-PID`` folders a killed job of this output left behind (Snakemake
    never runs two jobs of one output at once, so none of them belongs to a live job)."""
    for stale in glob.glob(glob.escape(out_dir) + ".partial-*"):
        log.info("removing %s, left by an interrupted job", stale)
        shutil.rmtree(stale, ignore_errors=True)


def write_text_atomic(path: str, text: str) -> None:
    """Write a text file under ``{path}.partial-PID`` and rename it into place."""
    tmp = f"{path}.partial-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def hdf5_damage(path: str, datasets) -> str | None:
    """Why the finished HDF5 file ``path`` cannot be read (None when it can): it does not open
    (truncated or overwritten in place), lacks one of ``datasets``, or an object's header is
    unreadable.  Cheap: it reads headers only, no data, so a run can check every file it will read
    before it plans."""
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
