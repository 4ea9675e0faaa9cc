"""profiles/slurm on a real single-node SLURM cluster (Debian's slurm-wlm and munge, started by the
test: tests/helpers/slurm_cluster.py): a tiny study goes through sbatch and gives the same tables and
HDF5 datasets as a local run; a job cancelled with scancel is redone by the rerun, with the same
results.  The cluster has no accounting storage, so sacct fails there: the run is told to ask squeue.

Without the packages (or root) the test skips with one line saying how to get them; under CI=true it
fails instead (make test installs them as root on Debian/Ubuntu: the Makefile's slurm target)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from helpers.configs import tiny_config, write_config
from helpers.slurm_cluster import INSTALL_HINT, SlurmCluster, cluster_unavailable_reason
from helpers.workflow import SNAKEMAKE, assert_same_h5, copy_workflow, link_images, one_line, smk

STUDY = {"blocks": ["1.1"], "channels": [0, 1]}
IMAGES = 50
# status every second from the start (the plugin's defaults wait 40 s first); squeue, not sacct
CLUSTER_ARGS = [
    "--profile",
    "profiles/slurm",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--seconds-between-status-checks",
    "1",
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = cluster_unavailable_reason()
    if reason:
        message = f"no SLURM test cluster ({reason}): {INSTALL_HINT}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the real-cluster test is required under CI=true, but {message}", pytrace=False)
        pytest.skip(message)
    slurm = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield slurm.start()
    finally:
        slurm.stop()


def workflow_copy(folder: Path, data: Path) -> Path:
    """A copy of the workflow whose config (``tiny.yaml``) writes to its own ``results``: the same
    relative path in every copy, so that outputs naming it compare equal."""
    copy_workflow(folder)
    config = tiny_config("results", data, study=STUDY, fv={"steps": 8})
    write_config(folder / "tiny.yaml", config)
    return folder


def outputs(results: Path) -> dict[str, Path]:
    """Every table and HDF5 file of a run, by relative path (logs and benchmarks left out)."""
    return {
        str(p.relative_to(results)): p
        for p in sorted(results.rglob("*"))
        if p.suffix in (".csv", ".h5") and p.relative_to(results).parts[0] not in ("logs", "benchmarks")
    }


def assert_same_outputs(a: Path, b: Path) -> int:
    found_a, found_b = outputs(a), outputs(b)
    assert sorted(found_a) == sorted(found_b)
    for name, path in found_a.items():
        if path.suffix == ".h5":
            assert_same_h5(path, found_b[name])
        else:
            assert path.read_bytes() == found_b[name].read_bytes(), name
    return len(found_a)


def submitted_jobs(slurm: SlurmCluster) -> dict[str, dict]:
    """Every job the controller has seen (finished ones stay MinJobAge = 300 s), by id: its sbatch
    comment (rule or group), CPUs, memory and time limit."""
    out = slurm.run("squeue", "-h", "-a", "-t", "all", "-o", "%i|%k|%C|%m|%l").stdout
    return {
        job: dict(comment=comment, cpus=cpus, mem=mem, limit=limit)
        for job, comment, cpus, mem, limit in (line.split("|") for line in out.split())
    }


def cancel_first_running(slurm: SlurmCluster, rule: str, proc: subprocess.Popen, timeout: float = 300) -> str:
    """scancel the first job of ``rule`` seen RUNNING (its sbatch comment names the rule)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        for line in slurm.run("squeue", "-h", "-t", "RUNNING", "-o", "%i|%k").stdout.split():
            jobid, comment = line.split("|", 1)
            if rule in comment:
                slurm.run("scancel", jobid)
                return jobid
        time.sleep(0.2)
    raise AssertionError(f"no {rule} job was seen running")


def test_profile_on_a_real_cluster_matches_a_local_run_and_recovers_from_scancel(tmp_path, sample_dir, cluster):
    data = link_images(sample_dir, tmp_path / "data", IMAGES)
    local = workflow_copy(tmp_path / "local", data)
    smk("--cores", "2", "--configfile", "tiny.yaml", cwd=local)

    on_cluster = workflow_copy(tmp_path / "cluster", data)
    logs = tmp_path / "slurm-logs"
    run = [*CLUSTER_ARGS, "--configfile", "tiny.yaml", "--slurm-logdir", logs, "--slurm-keep-successful-logs"]
    smk(*run, env=cluster.env, cwd=on_cluster, timeout=600)
    jobs = submitted_jobs(cluster)
    # one FV group (3 centre chunks and the channel-FV chunk), the model card, the dataset pass,
    # 5 exemplar grids, 2 measurements, the atlas block; the rest ran here (localrules)
    assert len(jobs) == 11, jobs
    (group,) = [j for j in jobs.values() if j["comment"].startswith("rule_fv_")]
    # in sequence on CPU: one job's CPU and memory (2 units: 3000 + 2 x 5 MB), 4 x 6 minutes (it fits
    # this node's CPUs; the four side by side would ask for 4 CPUs and 4 x the memory)
    assert (group["cpus"], group["mem"], group["limit"]) == ("1", "3010M", "24:00"), group
    compared = assert_same_outputs(local / "results", on_cluster / "results")
    # the dataset pass's and 4 FV chunks' HDF5, 5 exemplar lists, the block's 4 tables, the model card, the scorecard
    assert compared == 16

    # the block's measurement on the dataset made again (--forcerun; the tables and figures read from
    # it follow) and cancelled while it runs: Snakemake submits it again (seen even with --retries 0)
    # and the run ends with the same results
    again = [*run, "--forcerun", "measure_imagenet"]
    proc = subprocess.Popen(
        SNAKEMAKE + [str(a) for a in again],
        cwd=on_cluster,
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    cancelled = cancel_first_running(cluster, "measure_imagenet", proc)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    now = submitted_jobs(cluster)
    assert now[cancelled]["comment"] == "rule_measure_imagenet_wildcards_1.1"
    redone = [j for j, info in now.items() if int(j) > int(cancelled) and info["comment"] == now[cancelled]["comment"]]
    assert len(redone) == 1, out[-3000:]
    assert assert_same_outputs(local / "results", on_cluster / "results") == compared


def test_a_cluster_without_accounting_stops_before_submitting(tmp_path, sample_dir, cluster):
    """The profile as it ships (job status from sacct, which this cluster lacks): one line naming the
    fix, nothing submitted (the plugin would otherwise wait forever for finished jobs)."""
    data = link_images(sample_dir, tmp_path / "data", 4)
    folder = workflow_copy(tmp_path / "workflow", data)
    before = submitted_jobs(cluster)
    proc = smk(
        "--profile",
        "profiles/slurm",
        "--configfile",
        "tiny.yaml",
        env=cluster.env,
        cwd=folder,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 1
    assert one_line(proc) == (
        "resstream: sacct fails on this cluster (Slurm accounting storage is disabled), so the SLURM executor would "
        "never see a job finish. Fix: add --slurm-status-command squeue to the snakemake command "
        "(or slurm-status-command: squeue to your copy of profiles/slurm)"
    )
    assert set(submitted_jobs(cluster)) <= set(before)  # no new job (finished ones may age out)
