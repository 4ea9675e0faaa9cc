"""Failures explain themselves: a job's unexpected exception leaves its full traceback in the rule's
log (what --show-failed-logs prints) and one line on stderr; a known problem and a full disk end
with one line that names the fix."""

import errno
import logging
import os
import subprocess
import sys
import types

import pytest

from helpers import REPO
from resstream.base.disk_space import device_of
from resstream.base.errors import UserError
from resstream.workflow.job_runner import script_main


@pytest.fixture(autouse=True)
def root_logging():
    """script_main sets up the process's logging as a job's; give the test process its own back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def job(tmp_path, rule="measure_fv"):
    """What script_main reads of a Snakemake job: its log, threads, rule and outputs (threads None:
    this test process keeps its torch threads)."""
    return types.SimpleNamespace(
        log=[str(tmp_path / "logs" / f"{rule}.log")],
        threads=None,
        rule=rule,
        output=[str(tmp_path / "results" / "table.csv")],
    )


def fail(exc):
    def work():
        logging.getLogger("resstream.analysis.measure").info("measuring block 2.1")
        raise exc

    return work


def run(snakemake, work, capsys):
    with pytest.raises(SystemExit) as stop:
        script_main(snakemake, work)
    assert stop.value.code == 1
    logging.shutdown()
    return capsys.readouterr().err.splitlines()


def test_an_unexpected_error_puts_its_traceback_in_the_log_and_one_line_on_stderr(tmp_path, capsys):
    snakemake = job(tmp_path)
    err = run(snakemake, fail(KeyError("layer4.1.bn2")), capsys)
    log = (tmp_path / "logs" / "measure_fv.log").read_text()
    assert "measuring block 2.1" in log
    assert "Traceback (most recent call last)" in log and "raise exc" in log and "KeyError: 'layer4.1.bn2'" in log
    assert "Traceback" not in "\n".join(err)
    assert err[-1] == (
        f"resstream: rule measure_fv failed: KeyError: 'layer4.1.bn2' (full traceback in {snakemake.log[0]})"
    )
    assert [line for line in err if line.startswith("resstream:")] == [err[-1]]


def test_a_user_error_is_one_line(tmp_path, capsys):
    message = "dataset.path /nowhere is not a folder. Fix: point it at an image folder"
    err = run(job(tmp_path), fail(UserError(message)), capsys)
    assert err[-1] == f"resstream: {message}"
    assert "Traceback" not in (tmp_path / "logs" / "measure_fv.log").read_text()


def test_a_full_disk_anywhere_names_the_file_and_the_device(tmp_path, capsys):
    snakemake = job(tmp_path, "figure")
    written = str(tmp_path / "results" / "figures" / "fig2.png")
    err = run(snakemake, fail(OSError(errno.ENOSPC, "No space left on device", written)), capsys)
    assert err[-1] == (
        f"resstream: the disk filled up while writing {written}: no space left on {device_of(written)}. "
        f"Fix: free space there (or set results: to a folder on a larger disk) and rerun; finished "
        f"outputs are kept"
    )
    assert "Traceback" in (tmp_path / "logs" / "figure.log").read_text()  # where it happened, for the curious


THREADS_PROBE = """
import sys, types
from resstream.workflow.job_runner import script_main
job = types.SimpleNamespace(log=[], threads=1, rule="metric_table", output=[])
{before}
def work():
    loaded = "torch" in sys.modules
    import torch
    return loaded, torch.get_num_threads()
print(*script_main(job, work))
"""


@pytest.mark.parametrize("before", ["", "import torch"], ids=["torch-imported-by-the-work", "torch-already-imported"])
def test_a_job_runs_torch_on_its_threads_and_imports_it_only_when_its_work_does(before):
    """A one-thread job on a machine of more cores: torch, whether the work imports it or it was
    loaded before, runs on one thread; script_main itself does not import it."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    proc = subprocess.run(
        [sys.executable, "-c", THREADS_PROBE.format(before=before)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    loaded, threads = proc.stdout.split()
    assert loaded == str(bool(before)) and threads == "1"
    if (os.cpu_count() or 1) > 1:  # the default would be more than one thread
        default = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert int(default) > 1
