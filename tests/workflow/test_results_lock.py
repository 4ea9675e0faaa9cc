"""One run per results folder, refusals that keep what another wrote, and a stop that stops the jobs.

Real snakemake subprocesses on random weights, a 4-image dataset and one FV job made slow on
purpose (many steps) so that a run is alive while the test acts; the lock file's functions are
also checked on their own, with live, dead and reused PIDs.
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from helpers.configs import changed_config_file, tiny_config_file
from helpers.sample_images import make_image_folder
from helpers.workflow import SNAKEMAKE, copy_workflow, one_line, smk
from resstream.base.errors import UserError
from resstream.workflow.job_runner import REFUSED_MARKER_SUFFIX
from resstream.workflow.processes import process_start
from resstream.workflow.run_lock import LOCK_NAME, Owner, release_results_lock, take_results_lock
from resstream.workflow.smk import needs_run_lock

FINISHED_CHUNK = "fv/layer1.0.prerelu_out/c0000-0063"
SLOW_CHUNK = "fv/layer1.1.bn2/c0000-0063"


@pytest.fixture
def setup(tmp_path):
    """Two working folders (copies of the workflow), one tiny config (2 FV steps) and a slow one
    (FV jobs of thousands of steps), both with results in tmp_path/results."""
    data = make_image_folder(tmp_path / "data", n_classes=4)
    quick = tiny_config_file(tmp_path, data)
    slow = changed_config_file(quick, tmp_path, {"fv": {"steps": 5000}})
    return {
        "a": copy_workflow(tmp_path / "a"),
        "b": copy_workflow(tmp_path / "b"),
        "quick": quick,
        "slow": slow,
        "results": tmp_path / "results",
    }


def finished_outputs(results) -> dict[str, str]:
    """sha256 of every file under ``results`` but the records of runs (logs, benchmarks), the lock
    and a running job's partial folder."""
    out = {}
    for p in sorted(results.rglob("*")):
        rel = str(p.relative_to(results))
        if p.is_file() and not rel.startswith(("logs", "benchmarks", LOCK_NAME)) and ".partial-" not in rel:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def start_run(workflow, config, target):
    """snakemake in the background (SIGINT at its default, as from a terminal), for ``target``."""
    return subprocess.Popen(
        SNAKEMAKE + [str(target), "--cores", "1", "--configfile", str(config)],
        cwd=workflow,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_job_steps(run, results, chunk="*/*", timeout=180):
    """Wait until an FV job of ``chunk`` (``layer/chunk``, a glob) has logged an optimisation step."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(" step " in log.read_text() for log in (results / "logs" / "fv").glob(chunk + ".log")):
            return
        assert run.poll() is None, run.communicate()[1][-3000:]
        time.sleep(0.3)
    raise AssertionError(f"no FV job of {chunk} logged a step within {timeout} s")


def test_second_run_stops_before_planning_and_two_sigints_stop_the_first(setup):
    results = setup["results"]
    smk(results / FINISHED_CHUNK, "--cores", "1", "--configfile", setup["quick"], cwd=setup["a"])
    before = finished_outputs(results)
    assert FINISHED_CHUNK + "/fv.h5" in before

    first = start_run(setup["a"], setup["slow"], results / SLOW_CHUNK)
    try:
        wait_for_job_steps(first, results, SLOW_CHUNK.removeprefix("fv/"))
        owner = json.loads((results / LOCK_NAME).read_text())
        assert (owner["pid"], owner["host"]) == (first.pid, socket.gethostname())
        expected = (
            f"resstream: results folder {results} is in use by another snakemake run (PID {first.pid} on "
            f"host {socket.gethostname()}, working folder {setup['a']}, started {owner['started']}); wait for "
            f"it to finish or stop it (kill -INT {first.pid}), or give this run a results: folder of its own "
            f"(snakemake --unlock does not apply: that run is alive)"
        )
        # another working folder (Snakemake's own lock cannot see it), then the first run's own folder
        for folder in (setup["b"], setup["a"]):
            second = smk("--cores", "1", "--configfile", setup["quick"], cwd=folder, check=False)
            assert second.returncode == 1
            assert one_line(second) == expected
            assert "Building DAG" not in second.stdout + second.stderr  # stopped before planning
            assert "Traceback" not in second.stderr
        # a dry run needs no lock
        assert smk("-n", "--cores", "1", "--configfile", setup["quick"], cwd=setup["b"]).returncode == 0
        assert finished_outputs(results) == before

        jobs = psutil.Process(first.pid).children(recursive=True)
        assert any("fv_chunk" in " ".join(job.cmdline()) for job in jobs)
        first.send_signal(signal.SIGINT)
        time.sleep(0.3)
        first.send_signal(signal.SIGINT)
        _out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode != 0
    time.sleep(1)
    assert [job.pid for job in jobs if job.is_running() and job.status() != psutil.STATUS_ZOMBIE] == []
    assert "Traceback" not in err, err[-3000:]
    assert "resstream: stopping: ending the" in err
    assert not (results / LOCK_NAME).exists()
    assert list((setup["a"] / ".snakemake" / "locks").glob("*")) == []  # no --unlock needed to go on
    assert finished_outputs(results) == before


def test_ctrl_c_twice_in_a_terminal_stops_every_job_without_a_traceback(setup):
    """Ctrl-C in a terminal signals the whole process group, the jobs too (the jobs ignore it and
    are ended by the main process instead: none prints a KeyboardInterrupt traceback)."""
    results = setup["results"]
    run = subprocess.Popen(
        SNAKEMAKE + ["--cores", "2", "--configfile", str(setup["slow"])],
        cwd=setup["a"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for_job_steps(run, results)
        jobs = psutil.Process(run.pid).children(recursive=True)
        assert len(jobs) >= 2  # the FV job and another (the activations job or a second FV job)
        os.killpg(run.pid, signal.SIGINT)
        time.sleep(0.3)
        os.killpg(run.pid, signal.SIGINT)
        _out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode != 0
    time.sleep(1)
    assert [job.pid for job in jobs if job.is_running() and job.status() != psutil.STATUS_ZOMBIE] == []
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert not (results / LOCK_NAME).exists()


def test_stale_lock_of_a_dead_run_is_taken_over_with_a_note(setup):
    results = setup["results"]
    results.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = Owner(socket.gethostname(), dead.pid, None, "/elsewhere", "2026-01-01 00:00:00 UTC")
    (results / LOCK_NAME).write_text(json.dumps(stale.__dict__))
    proc = smk("-n", "--cores", "1", "--configfile", setup["quick"], cwd=setup["a"])  # a dry run ignores it
    assert proc.returncode == 0 and (results / LOCK_NAME).exists()
    proc = smk(results / FINISHED_CHUNK, "--cores", "1", "--configfile", setup["quick"], cwd=setup["a"])
    assert one_line(proc) == (
        f"resstream: note: results folder {results} was locked by a run that has ended (PID {dead.pid} on host "
        f"{socket.gethostname()}, working folder /elsewhere, started 2026-01-01 00:00:00 UTC); this run takes the "
        f"lock over"
    )
    assert (results / FINISHED_CHUNK / "fv.h5").is_file()
    assert not (results / LOCK_NAME).exists()  # released at the end


def test_lock_is_released_when_the_run_stops_at_its_preflight(setup, tmp_path):
    """A run that stops before its first job (here: the dataset folder is missing, found in
    onstart, after the lock was taken) leaves no lock behind."""
    config = changed_config_file(setup["quick"], tmp_path, {"dataset": {"path": str(tmp_path / "nowhere")}})
    proc = smk("--cores", "1", "--configfile", config, cwd=setup["a"], check=False)
    assert proc.returncode == 1
    assert one_line(proc).startswith(f"resstream: dataset.path {tmp_path / 'nowhere'} ")
    assert (setup["results"]).is_dir() and not (setup["results"] / LOCK_NAME).exists()


def test_results_folder_that_cannot_be_made(setup, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    results = tmp_path / "a-file" / "results"
    config = changed_config_file(setup["quick"], tmp_path, {"results": str(results)})
    proc = smk("--cores", "1", "--configfile", config, cwd=setup["a"], check=False)
    assert proc.returncode == 1
    assert one_line(proc) == (
        f"resstream: results folder {results} cannot be used: Not a directory ({results}); "
        f"set results: to a folder you can write to"
    )


def test_a_refusing_job_keeps_the_output_another_wrote(setup):
    """An output that appears while its job runs (here written by hand, as another run without the
    lock would) is refused by the job, and Snakemake's removal of the failed job's outputs spares it."""
    results = setup["results"]
    config = changed_config_file(setup["quick"], setup["a"], {"fv": {"steps": 400}})
    run = start_run(setup["a"], config, results / SLOW_CHUNK)
    try:
        wait_for_job_steps(run, results, SLOW_CHUNK.removeprefix("fv/"))
        foreign = results / SLOW_CHUNK
        foreign.mkdir(parents=True)
        (foreign / "fv.h5").write_bytes(b"finished by another writer")
        (foreign / "unit0000.png").write_bytes(b"\x89PNG another")
        _out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 1
    assert (foreign / "fv.h5").read_bytes() == b"finished by another writer"
    assert (foreign / "unit0000.png").read_bytes() == b"\x89PNG another"
    assert (
        f"resstream: {foreign} already holds FV results; delete it (or let snakemake rerun the job) to recompute" in err
    )
    assert (
        f"resstream: kept {foreign}: job fv_chunk refused to overwrite it (it was written by something else "
        f"while the job ran); nothing of it was removed"
    ) in err
    assert "Removing output files of failed job" not in err
    assert not os.path.exists(str(foreign) + REFUSED_MARKER_SUFFIX)


# the lock file's functions on their own


def write_lock(results, owner: Owner):
    results.mkdir(exist_ok=True)
    (results / LOCK_NAME).write_text(json.dumps(owner.__dict__))


def test_live_owner_on_this_host_refuses(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = Owner(socket.gethostname(), sleeper.pid, process_start(sleeper.pid), "/w", "then")
        write_lock(tmp_path, owner)
        with pytest.raises(UserError) as err:
            take_results_lock(str(tmp_path))
        assert str(err.value) == (
            f"results folder {tmp_path} is in use by another snakemake run (PID {sleeper.pid} on host "
            f"{socket.gethostname()}, working folder /w, started then); wait for it to finish or stop it "
            f"(kill -INT {sleeper.pid}), or give this run a results: folder of its own (snakemake --unlock does "
            f"not apply: that run is alive)"
        )
        # the same PID started at another time is another process: the lock's run has ended
        write_lock(tmp_path, Owner(socket.gethostname(), sleeper.pid, "1", "/w", "then"))
        assert take_results_lock(str(tmp_path))[0].startswith(
            f"note: results folder {tmp_path} was locked by a run that has ended"
        )
    finally:
        sleeper.kill()
        sleeper.wait()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    release_results_lock(str(tmp_path))
    assert not (tmp_path / LOCK_NAME).exists()


def test_owner_on_another_host_gets_the_command_that_clears_it(tmp_path):
    write_lock(tmp_path, Owner("node-7", 4242, None, "/w", "then"))
    with pytest.raises(UserError) as err:
        take_results_lock(str(tmp_path))
    assert str(err.value) == (
        f"results folder {tmp_path} is locked by a snakemake run on another host (PID 4242 on host node-7, "
        f"working folder /w, started then), which this host cannot check; if that run has ended, clear the lock "
        f"with: rm {tmp_path / LOCK_NAME}"
    )
    release_results_lock(str(tmp_path))  # not ours: left as it is
    assert json.loads((tmp_path / LOCK_NAME).read_text())["host"] == "node-7"


def test_stale_lock_from_this_working_folder_says_unlock_is_safe(tmp_path):
    """After a SIGKILL the next run in the same folder also meets Snakemake's own lock, whose advice
    (--unlock) is right then: the note says so."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_lock(tmp_path, Owner(socket.gethostname(), dead.pid, None, os.getcwd(), "then"))
    assert take_results_lock(str(tmp_path)) == [
        f"note: results folder {tmp_path} was locked by a run that has ended (PID {dead.pid} on host "
        f"{socket.gethostname()}, working folder {os.getcwd()}, started then); this run takes the lock over; if "
        f"Snakemake then says the directory cannot be locked, that lock is the ended run's: snakemake --unlock is safe"
    ]
    release_results_lock(str(tmp_path))


def test_unreadable_lock_file_is_stale_and_our_own_is_ours(tmp_path):
    (tmp_path / LOCK_NAME).write_text('{"host": "vm", "pi')  # a run killed while writing it
    assert take_results_lock(str(tmp_path))[0].startswith(
        f"note: results folder {tmp_path} was locked by a run that has ended"
    )
    assert take_results_lock(str(tmp_path)) == []  # taking it again (a second parse) is fine
    release_results_lock(str(tmp_path))
    release_results_lock(str(tmp_path))
    assert not (tmp_path / LOCK_NAME).exists()


@pytest.mark.parametrize(
    "argv, dry_run, needed",
    [
        (["--cores", "2"], False, True),
        (["--cores", "2"], True, False),
        (["--report", "r.html"], False, False),
        (["--report", "r.html", "--report-after-run", "--cores", "2"], False, True),
        (["--unlock"], False, False),
        (["--lint"], False, False),
        (["--summary"], False, False),
        (["--touch", "--cores", "1"], False, True),
    ],
)
def test_which_commands_take_the_lock(argv, dry_run, needed):
    assert needs_run_lock(dry_run, argv) is needed
