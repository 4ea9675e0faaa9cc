"""Outputs a job refused to overwrite stay where they are, even though the job failed.

A job builds its output folder under a ``.partial-PID`` name and renames it into place; when the
final folder is already there and not empty (written by something else while the job ran: another
run of the same results folder, a copy by hand) the job refuses to replace it and fails.  Snakemake
then removes "output files of failed job since they might be corrupted", which here is the other
writer's finished work, which this job never touched.

So a refusing job leaves a marker ``{output}.refused-by-job`` beside the output
(:func:`resstream.workflow.job_runner.mark_refused`), and in every Snakemake process of the workflow :func:`keep_refused_outputs` makes that
removal skip an output with a marker (and delete the marker).  A job's own outputs need no such
removal: they appear complete or not at all (:mod:`resstream.base.outputs`).
"""

from __future__ import annotations

import inspect
import os
import sys

from resstream.workflow.job_runner import REFUSED_MARKER_SUFFIX


def claim_refusal(output: str) -> bool:
    """Whether a job refused to overwrite ``output``; the marker is removed (it served its one run)."""
    try:
        os.remove(output + REFUSED_MARKER_SUFFIX)
    except FileNotFoundError:
        return False
    return True


def keep_refused_outputs() -> None:
    """Make Snakemake's removal of a failed job's outputs skip those its job refused to overwrite
    (installed once per process; left out where Snakemake's removal has another signature)."""
    from snakemake.jobs import Job

    remove = Job.cleanup
    if getattr(remove, "keeps_refused_outputs", False) or list(inspect.signature(remove).parameters) != [
        "self",
        "skip_outputs",
    ]:
        return

    async def cleanup(self, skip_outputs):
        kept = {f for f in self.output if claim_refusal(str(f))}
        for f in sorted(kept):
            print(
                f"resstream: kept {f}: job {self} refused to overwrite it (it was written by something else "
                f"while the job ran); nothing of it was removed",
                file=sys.stderr,
            )
        return await remove(self, set(skip_outputs) | kept)

    cleanup.keeps_refused_outputs = True
    Job.cleanup = cleanup
