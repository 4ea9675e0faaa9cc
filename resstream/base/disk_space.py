"""Free disk space: checked before a job writes an output whose size is known in advance, and a
full disk met anyway turned into one line that names the file and the device.

Messages name the device as the file system's mount point and source (``/proc/mounts``), e.g.
``/scratch (tmpfs)``, because that is what a user frees space on or moves ``results`` away from.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil

from resstream.base.errors import UserError


class DiskSpaceError(UserError, OSError):
    """Not enough free space for an output; the message names the device, the sizes and the fix."""


def existing_ancestor(path: str) -> str:
    """``path`` itself or its nearest existing parent folder (outputs are checked before they exist)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def device_of(path: str) -> str:
    """The file system holding ``path``: ``"<mount point> (<source>)"`` from ``/proc/mounts``, or the
    mount point alone where that table cannot be read."""
    where = os.path.realpath(existing_ancestor(path))
    mount = where
    while not os.path.ismount(mount):
        mount = os.path.dirname(mount)
    try:
        with open("/proc/mounts") as f:
            sources = {fields[1]: fields[0] for fields in (line.split() for line in f) if len(fields) > 1}
    except OSError:
        return mount
    source = sources.get(mount)
    return f"{mount} ({source})" if source else mount


def human_bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def check_free_space(path: str, needed: int, what: str) -> None:
    """Raise :class:`DiskSpaceError` unless the device that will hold ``path`` has ``needed`` bytes free."""
    free = shutil.disk_usage(existing_ancestor(path)).free
    if free < needed:
        raise DiskSpaceError(
            f"{what} needs about {human_bytes(needed)} on {device_of(path)}, which has {human_bytes(free)} free; "
            f"nothing was written. Fix: free space there, or set results: to a folder on a larger disk"
        )


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` or an exception it came from says the device (or the user's quota) is full:
    ENOSPC / EDQUOT, or HDF5's message for it inside a RuntimeError."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_error(path: str) -> DiskSpaceError:
    """The one-line error for a write to ``path`` that found its device full."""
    return DiskSpaceError(
        f"the disk filled up while writing {path}: no space left on {device_of(path)}. Fix: free space there "
        f"(or set results: to a folder on a larger disk) and rerun; finished outputs are kept"
    )


@contextlib.contextmanager
def disk_full_named(path: str):
    """A full disk met inside the ``with`` block ends in :func:`disk_full_error` naming ``path``;
    any other error passes unchanged."""
    try:
        yield
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full_error(path) from None
        raise
