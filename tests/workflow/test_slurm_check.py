"""The SLURM pre-flight (resstream/workflow/slurm_check.py) on the answers real SLURM commands give,
played back here: sacct on a cluster without accounting storage, scontrol's MinJobAge, sinfo's nodes.
(tests/workflow/test_real_cluster.py checks the same lines against a real cluster.)"""

import subprocess

import pytest

from resstream.workflow import slurm_check
from resstream.workflow.slurm_check import Request, largest_node, oversized_requests, status_command_problem

NO_ACCOUNTING = "Slurm accounting storage is disabled\n"  # slurm-wlm 22.05's sacct, rc 1


def answers(**by_tool):
    """A runner answering each tool with (rc, stdout, stderr); records the calls."""
    seen = []

    def run(argv):
        seen.append(argv)
        rc, out, err = by_tool[argv[0]]
        return subprocess.CompletedProcess(argv, rc, out, err)

    run.seen = seen
    return run


@pytest.fixture(autouse=True)
def sacct_on_path(monkeypatch):
    monkeypatch.setattr(slurm_check.shutil, "which", lambda name: f"/usr/bin/{name}")


def test_failing_sacct_stops_the_run_naming_the_squeue_status_command():
    run = answers(sacct=(1, "", NO_ACCOUNTING))
    line = status_command_problem("sacct", 40, run)
    assert line == (
        "sacct fails on this cluster (Slurm accounting storage is disabled), so the SLURM executor would "
        "never see a job finish. Fix: add --slurm-status-command squeue to the snakemake command "
        "(or slurm-status-command: squeue to your copy of profiles/slurm)"
    )
    assert run.seen[0][0] == "sacct"


def test_squeue_is_enough_only_when_min_job_age_outlasts_three_first_intervals():
    config = "MinJobAge               = 300 sec\nMaxArraySize = 1001\n"
    run = answers(sacct=(1, "", NO_ACCOUNTING), scontrol=(0, config, ""))
    assert status_command_problem("squeue", 40, run) is None  # 300 s >= 3 x 40 s
    line = status_command_problem("squeue", 120, run)  # the plugin would go back to sacct
    assert "MinJobAge (300 s) is under 3 x --slurm-init-seconds-before-status-checks (120 s)" in line
    assert line.endswith(
        "Fix: pass --slurm-init-seconds-before-status-checks 100 or less, or ask the admins for MinJobAge >= 360"
    )


def test_working_or_absent_sacct_is_no_problem(monkeypatch):
    assert status_command_problem("sacct", 40, answers(sacct=(0, "", ""))) is None
    monkeypatch.setattr(slurm_check.shutil, "which", lambda name: None)
    assert status_command_problem("sacct", 40, answers()) is None


def test_largest_node_from_sinfo_and_the_jobs_no_node_can_hold():
    sinfo = "2|24105|(null)\n64|512000|gpu:a100:4(S:0-1)\n16|128000+|gpu:2\n"
    node = largest_node(answers(sinfo=(0, sinfo, "")))
    assert node == Request("largest node", 64, 512000, 4)
    small = largest_node(answers(sinfo=(0, "2|24105|(null)\n", "")))
    assert small == Request("largest node", 2, 24105, 0)
    fits = Request("fv_chunk (layer=layer1.1.bn2, chunk=c0000-0063)", 2, 3005, 0)
    big = Request("activations (one job)", 8, 30000, 1)
    (line,) = oversized_requests([fits, big], small)
    assert line.startswith(
        "warning: activations (one job) asks for 8 CPUs (the largest node has 2) and 30000 MB "
        "of memory (the largest node has 24105) and 1 GPUs (the largest node has 0) according "
        "to sinfo: it would stay pending forever. Fix: lower its request with --set-resources "
        "(e.g. activations:cpus_per_task=N or mem_mb=N)"
    )
    assert largest_node(answers(sinfo=(1, "", "sinfo: error: ..."))) is None
