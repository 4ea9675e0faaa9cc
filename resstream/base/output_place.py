"""Whether an output can be created where a user asked for it, said before any work is done.

A command that computes for minutes and then fails to create its output folder has wasted the
minutes and ends with the operating system's error about a temporary name; this check names the
user's own path instead.  Standard library only: the commands that use it start fast.
"""

from __future__ import annotations

import os

from resstream.base.errors import UserError


def check_output_place(path: str | os.PathLike, option: str) -> None:
    """Raise :class:`UserError` when ``path`` cannot be created: a folder above it is a file, or
    the nearest existing folder above it is not writable.  ``option`` names the setting in the
    message (``--out``, ``--dest``)."""
    path = os.fspath(path)
    above = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        raise UserError(
            f"{option} {path}: {above} is a file, not a folder; nothing was computed. Fix: choose {option} in a folder"
        )
    if not os.access(above, os.W_OK | os.X_OK):
        raise UserError(
            f"{option} {path}: you cannot write in {above}; nothing was computed. Fix: choose {option} in "
            f"a folder you can write to"
        )
