"""Ctrl-C (SIGINT) on a local run stops the jobs it started, without a flood of tracebacks.

Snakemake's local executor answers SIGINT by waiting for its running jobs to end (it does not stop
them when only its own process got the signal, as with ``kill -INT``); a second SIGINT then lands in
that wait and in asyncio's teardown: about a hundred lines of tracebacks, a main process that hangs,
and jobs (an activations job for an hour) left running with no one to record their outputs.

Here the main process's first SIGINT ends every process it started (SIGTERM) and then lets Snakemake
stop as it does, and a second one kills what is still there (SIGKILL) instead of interrupting
Snakemake's clean-up.  A job's half-built output lives under a ``.partial-PID`` name
(:mod:`resstream.base.outputs`) and is cleared by the next run, so nothing finished is lost.
"""

from __future__ import annotations

import os
import signal
import sys

from resstream.workflow.processes import descendants, signal_all


def install_stop_handler() -> None:
    """Make SIGINT in this (Snakemake's main) process stop the jobs it started, as above."""
    interrupts = []

    def on_sigint(signum, frame):
        interrupts.append(signum)
        pids = descendants(os.getpid())
        if len(interrupts) == 1:
            _say(f"stopping: ending the {len(pids)} process(es) this run started (a second Ctrl-C kills them at once)")
            signal_all(pids, signal.SIGTERM)
            raise KeyboardInterrupt  # Snakemake's own stop: no new jobs, metadata of the stopped ones cleared
        if pids:
            _say(f"stopping: killing the {len(pids)} process(es) still running; Snakemake exits once they are gone")
            signal_all(pids, signal.SIGKILL)
        else:
            _say("stopping: no process of this run is left; Snakemake is finishing its clean-up")

    signal.signal(signal.SIGINT, on_sigint)
    _jobs_ignore_sigint()


def _jobs_ignore_sigint() -> None:
    """Jobs start with SIGINT ignored (a disposition that survives exec): Ctrl-C in a terminal
    signals the whole process group, and a job caught in the middle of an import or a torch call
    would print its KeyboardInterrupt traceback before the SIGTERM above ends it."""
    from snakemake.shell import shell

    ignore = "trap '' INT; "
    current = shell._get_process_prefix() if hasattr(shell, "_get_process_prefix") else ""  # bash: set -euo pipefail
    if ignore not in current:
        shell.prefix(current + ignore)


def _say(message: str) -> None:
    print(f"resstream: {message}", file=sys.stderr, flush=True)
