"""One run per results folder: a lock file in the results folder, held by Snakemake's main process.

Snakemake's own lock lives in the working folder's ``.snakemake/``, so two runs started from two
working folders with the same ``results:`` (a common accident on a shared server) do not see each
other; the second would plan jobs the first is running and remove or replace its finished outputs.
The main process of a run (on a cluster: the node it runs on, not the jobs' nodes) takes
``{results}/.resstream-run.lock`` before it plans anything and removes it when it exits.

The file names its owner (host, PID, the process's start time, working folder, when it started).
A lock whose owner is on this host and no longer running (same PID, other start time: a reused PID)
is stale: it is taken over with one line saying so.  An owner on another host cannot be checked
from here: the line says so and gives the command that clears the lock once that run has ended.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass

from resstream.base.errors import UserError
from resstream.workflow.processes import pid_alive, process_start

LOCK_NAME = ".resstream-run.lock"


@dataclass(frozen=True)
class Owner:
    """Who holds a results folder's lock."""

    host: str
    pid: int
    process_start: str | None  # the kernel's start time of ``pid`` (None where unknown)
    workdir: str
    started: str

    @classmethod
    def this_process(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, process_start(pid), os.getcwd(), time.strftime("%Y-%m-%d %H:%M:%S %Z"))

    def is_running_here(self) -> bool:
        """Whether the owner (on this host) is still running: its PID alive and, where the kernel
        says, started when the lock says (a dead run's PID may since belong to another process)."""
        if not pid_alive(self.pid):  # (a lock file that did not parse names PID -1)
            return False
        return self.process_start is None or process_start(self.pid) in (None, self.process_start)

    def describe(self) -> str:
        return f"PID {self.pid} on host {self.host}, working folder {self.workdir}, started {self.started}"


def lock_path(results: str) -> str:
    return os.path.join(results, LOCK_NAME)


def take_results_lock(results: str) -> list[str]:
    """Take the lock on ``results`` for this process until it exits; returns the notes to print
    (a stale lock taken over).  Raises :class:`UserError` while another run holds it."""
    os.makedirs(results, exist_ok=True)
    path, me = lock_path(results), Owner.this_process()
    # an flock on the folder itself serialises two runs of this host that find the same stale lock
    # at the same moment (one takes it over, the other then sees a live owner); no file of its own
    folder = os.open(results, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        notes = _clear_stale(path, me, results)
        if not os.path.exists(path):
            _write_owner(path, me)
    finally:
        os.close(folder)
    atexit.register(release_results_lock, results)
    return notes


def _clear_stale(path: str, me: Owner, results: str) -> list[str]:
    """Remove a lock left by a run that ended on this host (returning the note that says so); raise
    for a live owner or one on another host; nothing for no lock or our own."""
    owner = read_owner(path)
    if owner is None or (owner.host, owner.pid) == (me.host, me.pid):
        return []
    if owner.host != me.host:
        raise UserError(
            f"results folder {results} is locked by a snakemake run on another host ({owner.describe()}), "
            f"which this host cannot check; if that run has ended, clear the lock with: rm {path}"
        )
    if owner.is_running_here():
        raise UserError(
            f"results folder {results} is in use by another snakemake run ({owner.describe()}); wait for it "
            f"to finish or stop it (kill -INT {owner.pid}), or give this run a results: folder of its own "
            f"(snakemake --unlock does not apply: that run is alive)"
        )
    os.remove(path)
    note = f"note: results folder {results} was locked by a run that has ended ({owner.describe()}); this run takes the lock over"
    if owner.workdir == me.workdir:  # Snakemake's own lock in this folder may be that run's too
        note += "; if Snakemake then says the directory cannot be locked, that lock is the ended run's: snakemake --unlock is safe"
    return [note]


def read_owner(path: str) -> Owner | None:
    """The owner a lock file names; None without a file.  A lock file that does not parse (a run
    killed while writing it) names no live run and counts as stale."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    try:
        return Owner(**json.loads(text))
    except (ValueError, TypeError):
        return Owner(socket.gethostname(), -1, None, "(unknown)", "(unknown)")


def _write_owner(path: str, owner: Owner) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w") as f:
        json.dump(owner.__dict__, f)


def release_results_lock(results: str) -> None:
    """Remove the lock on ``results`` if this process holds it (idempotent: onsuccess, onerror and
    the process's exit each call it)."""
    path = lock_path(results)
    owner = read_owner(path)
    if owner is not None and (owner.host, owner.pid) == (socket.gethostname(), os.getpid()):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
