"""What the test session makes once, even when pytest-xdist spreads the tests over several worker
processes (``make test`` runs ``pytest -n``): each worker would otherwise make its own copy of a
session fixture (the shared small run: 42 jobs).

The first worker to ask makes the thing in a folder beside the workers' own temporary folders,
under a file lock; the others wait for the lock and use it.  A failure is recorded, so the others
fail with the same message instead of trying again.  Without xdist it is simply made.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable
from pathlib import Path

import pytest


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """The folder ``name``, made by ``make(folder)`` once per test session (all workers together)."""
    base = tmp_path_factory.getbasetemp()
    if not base.name.startswith("popen-gw"):  # no xdist: this process is the whole session
        folder = tmp_path_factory.mktemp(name)
        make(folder)
        return folder
    shared = base.parent / "made-once"  # the session's folder, above every worker's own
    shared.mkdir(exist_ok=True)
    folder, done = shared / name, shared / f"{name}.done.json"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            try:
                folder.mkdir()
                make(folder)
                done.write_text(json.dumps({"ok": True}))
            except BaseException as exc:
                done.write_text(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"[-4000:]}))
                raise
    outcome = json.loads(done.read_text())
    if not outcome["ok"]:
        pytest.fail(f"making {name} failed in another worker: {outcome['error']}")
    return folder
