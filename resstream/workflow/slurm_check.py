"""Checks of a SLURM cluster made once on the login node before anything is submitted (in
Snakemake's main process, when the executor is ``slurm``).

* Job status: snakemake-executor-plugin-slurm asks ``sacct`` whenever the binary exists (and falls
  back from ``squeue`` to ``sacct`` when MinJobAge is shorter than three first status intervals).
  On a cluster without accounting storage sacct fails, and the run then waits forever for jobs
  that have long finished, deaf to SIGINT and SIGTERM.  :func:`status_command_problem` names that
  before the first sbatch.
* Sizes: a job asking for more CPUs, memory or GPUs than any node has stays pending forever
  (``Reason=PartitionConfig``) and Snakemake says nothing.  :func:`oversized_requests` compares
  each job's request with the largest node ``sinfo`` lists.

Nothing here imports Snakemake or torch; the commands are run through ``run`` (tests pass their own).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

Runner = Callable[[list[str]], subprocess.CompletedProcess]


def run_command(argv: list[str]) -> subprocess.CompletedProcess:
    """``argv`` with its output captured; a missing binary or a hung one reads as a failure (rc 127)."""
    if shutil.which(argv[0]) is None:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: command not found")
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"{argv[0]} did not answer within 60 s")


def _first_line(proc: subprocess.CompletedProcess) -> str:
    text = (proc.stderr or proc.stdout or "").strip()
    return text.splitlines()[0] if text else f"exit status {proc.returncode}"


def min_job_age(run: Runner = run_command) -> int | None:
    """The cluster's MinJobAge in seconds (``scontrol show config``), None when it cannot be read."""
    proc = run(["scontrol", "show", "config"])
    found = re.search(r"^MinJobAge\s*=\s*(\d+)", proc.stdout or "", re.M) if proc.returncode == 0 else None
    return int(found.group(1)) if found else None


def status_command_problem(status_command: str, init_seconds: int, run: Runner = run_command) -> str | None:
    """Why the executor's job-status queries would never see a job finish, as one line naming the
    fix; None when sacct answers, is absent (the plugin then asks squeue), or will not be asked."""
    if shutil.which("sacct") is None:
        return None
    proc = run(["sacct", "--noheader", "--allocations", "--format=JobIdRaw", "--starttime=now"])
    if proc.returncode == 0:
        return None
    failure = f"sacct fails on this cluster ({_first_line(proc)}), so the SLURM executor would never see a job finish"
    if status_command != "squeue":
        return (
            f"{failure}. Fix: add --slurm-status-command squeue to the snakemake command "
            f"(or slurm-status-command: squeue to your copy of profiles/slurm)"
        )
    age = min_job_age(run)
    if age is None or age < 3 * init_seconds:
        # the plugin itself goes back to sacct then, squeue forgetting finished jobs too soon
        return (
            f"{failure}, and with --slurm-status-command squeue it still asks sacct because MinJobAge "
            f"({'unknown' if age is None else f'{age} s'}) is under 3 x --slurm-init-seconds-before-status-checks "
            f"({init_seconds} s). Fix: pass --slurm-init-seconds-before-status-checks "
            f"{max(1, (age or 0) // 3)} or less, or ask the admins for MinJobAge >= {3 * init_seconds}"
        )
    return None


@dataclass(frozen=True)
class Request:
    """What one submission asks for: its name, CPUs, memory (MB) and GPUs."""

    name: str
    cpus: int
    mem_mb: int
    gpus: int


def largest_node(run: Runner = run_command) -> Request | None:
    """The most CPUs, memory and GPUs any node offers (``sinfo``; each may come from a different
    node), None when sinfo cannot tell."""
    proc = run(["sinfo", "--noheader", "--Node", "--format=%c|%m|%G"])
    if proc.returncode != 0:
        return None
    cpus = mem = gpus = 0
    rows = [line.split("|") for line in (proc.stdout or "").split("\n") if line.count("|") == 2]
    for node_cpus, node_mem, gres in rows:
        if not (node_cpus.strip().isdigit() and node_mem.strip().rstrip("+").isdigit()):
            continue
        cpus, mem = max(cpus, int(node_cpus)), max(mem, int(node_mem.strip().rstrip("+")))
        gpus = max(gpus, sum(int(n) for n in re.findall(r"\bgpu(?::[^:,(]+)?:(\d+)", gres)))
    return Request("largest node", cpus, mem, gpus) if rows else None


def oversized_requests(requests: list[Request], node: Request) -> list[str]:
    """One warning line per request that no node can hold (it would stay pending forever)."""
    lines = []
    for req in requests:
        over = [
            f"{asked} {what} (the largest node has {has})"
            for what, asked, has in (
                ("CPUs", req.cpus, node.cpus),
                ("MB of memory", req.mem_mb, node.mem_mb),
                ("GPUs", req.gpus, node.gpus),
            )
            if asked > has
        ]
        if over:
            lines.append(
                f"warning: {req.name} asks for {' and '.join(over)} according to sinfo: it would stay "
                f"pending forever. Fix: lower its request with --set-resources (e.g. {req.name.split()[0]}:"
                f"cpus_per_task=N or mem_mb=N), or use a partition whose nodes are larger (slurm_partition)"
            )
    return lines
