"""Processes of this host as Linux's ``/proc`` shows them (nothing to install; elsewhere: unknown)."""

from __future__ import annotations

import os


def stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (field 3 on), or None (no such
    process, no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # the command name (field 2) may hold spaces and parentheses: split after its last ")"
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (another user's counts)."""
    if pid <= 0:  # 0 and negative numbers name process groups, not one process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot, or None where unknown."""
    fields = stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children, their children, ...); none where ``/proc`` is absent."""
    try:
        pids = [int(e) for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    children: dict[int, list[int]] = {}
    for other in pids:
        fields = stat_fields(other)
        if fields:  # None: ended meanwhile
            children.setdefault(int(fields[1]), []).append(other)
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def signal_all(pids: list[int], sig: int) -> None:
    """Send ``sig`` to each of ``pids`` that still exists."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
