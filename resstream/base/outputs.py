"""Outputs that appear complete or not at all: a job builds a folder or file under a temporary name
and renames it into place when done, so a killed job never leaves an output that looks finished."""

from __future__ import annotations

import glob
import logging
import os
import shutil

log = logging.getLogger("resstream.base.outputs")


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
            refusal.refused_output = out_dir  # a Snakemake job then keeps it (resstream/workflow/refusals.py)
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
