"""A full disk: outputs of a predictable size are checked against the free space before any work
(one line: the device, the space needed and free, the fix), and a disk that fills up anyway stops
the job with one line naming the file and the device, counting no batch whose write failed.

The disk is a 4 MB tmpfs where this test may mount one (root); elsewhere the free space is what a
patched ``shutil.disk_usage`` reports and a full disk is a write that fails with ENOSPC."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from helpers import REPO
from helpers.configs import tiny_config
from helpers.job_calls import render_chunk, run_pass
from helpers.workflow import link_images, resstream_lines
from resstream.base import disk_space
from resstream.workflow.config import validate_config

SMALL_STUDY = {"blocks": ["1.1"], "channels": [0]}


class SmallDisk:
    """A folder on a 4 MB device: a real tmpfs, or a folder whose free space is patched."""

    def __init__(self, root: Path, monkeypatch):
        self.root = root
        self.monkeypatch = monkeypatch
        root.mkdir()
        self.tmpfs = (
            os.geteuid() == 0
            and subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(root)], capture_output=True
            ).returncode
            == 0
        )
        if not self.tmpfs:
            self.leave_free(4 << 20)  # as a fresh 4 MB device

    def leave_free(self, n_bytes: int) -> None:
        """Fill the device until about ``n_bytes`` are free."""
        if self.tmpfs:
            free = disk_space.shutil.disk_usage(self.root).free
            with open(self.root / "filler", "wb") as f:
                f.write(b"\0" * max(0, free - n_bytes))
            return
        usage = disk_space.shutil.disk_usage(self.root)
        self.monkeypatch.setattr(disk_space.shutil, "disk_usage", lambda path: usage._replace(free=n_bytes))

    @property
    def device(self) -> str:
        return f"{self.root} (tmpfs)" if self.tmpfs else disk_space.device_of(str(self.root))

    def close(self):
        if self.tmpfs:
            subprocess.run(["umount", str(self.root)], check=True)


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    disk = SmallDisk(tmp_path / "disk", monkeypatch)
    yield disk
    disk.close()


def config_on(disk: SmallDisk, data, **activations) -> dict:
    return validate_config(
        tiny_config(disk.root / "results", data, study=SMALL_STUDY, fv={"steps": 3}, activations=activations)
    )


def test_the_dataset_pass_stops_before_any_work_when_the_file_cannot_fit(small_disk, sample_dir, tmp_path):
    """24 images with layer1.1.bn2's full maps (64 x 56 x 56 float16 = 401 kB each): ~9.6 MB."""
    data = link_images(sample_dir, tmp_path / "data", 24)
    config = config_on(small_disk, data, spatial_layers=["layer1.1.bn2"])
    out = small_disk.root / "results" / "activations" / "activations.h5"
    with pytest.raises(disk_space.DiskSpaceError) as info:
        run_pass(config, str(out))
    message = str(info.value)
    needed = 24 * 64 * 56 * 56 * 2  # the maps alone
    assert f"on {small_disk.device}, which has" in message and "nothing was written" in message
    assert message.endswith("Fix: free space there, or set results: to a folder on a larger disk")
    stated = float(message.split("needs about ")[1].split(" MB")[0]) * 1e6
    assert needed < stated < needed + 2e6, message
    assert "\n" not in message
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no partial file was made


def test_an_fv_chunk_stops_before_loading_the_model_when_short(small_disk, tmp_path, monkeypatch):
    config = config_on(small_disk, tmp_path)
    small_disk.leave_free(450_000)
    loaded = []
    monkeypatch.setattr("resstream.fv.job.load_model_param", lambda param: loaded.append(param))
    out = small_disk.root / "results" / "fv" / "layer1.1.bn2" / "c0000-0063"
    with pytest.raises(disk_space.DiskSpaceError) as info:
        render_chunk(config, "layer1.1.bn2", "c0000-0063", str(out))
    message = str(info.value)
    assert message.startswith(f"the FV chunk {out} (1 units x 3 steps) needs about ") and small_disk.device in message
    # at least the 8-bit PNG (224 x 224 x 3) and the float image (3 x 224 x 224 x 4) of its one unit
    stated = float(message.split("needs about ")[1].split(" kB")[0]) * 1e3
    assert 224 * 224 * 3 * 5 < stated < 1e6 and "which has 4" in message and "kB free" in message, message
    assert loaded == [] and not out.exists()


FILLED_RUN = """
import errno, json, logging, sys
sys.path.insert(0, "tests")
logging.basicConfig(level=logging.INFO, format="%(message)s")
import h5py
from resstream.activations import stream as activations
activations.check_free_space = lambda *a, **k: None  # the disk fills up after the check
if sys.argv[3] == "patched":  # no tmpfs here: the 4th block's write finds the device full
    flush, calls = h5py.File.flush, [0]
    def flush_or_full(self):
        calls[0] += 1
        if calls[0] == 8:  # creation, then data + counter per block: the 4th block's data
            raise OSError(errno.ENOSPC, "No space left on device")
        flush(self)
    h5py.File.flush = flush_or_full
from helpers.job_calls import run_pass
from resstream.base.errors import UserError
try:
    run_pass(json.loads(sys.argv[1]), sys.argv[2])
except UserError as exc:
    print(f"resstream: {exc}", file=sys.stderr)
    sys.exit(1)
"""


def test_a_disk_that_fills_up_during_the_pass_stops_with_one_line(small_disk, sample_dir, tmp_path):
    data = link_images(sample_dir, tmp_path / "data", 120)
    config = config_on(small_disk, data)
    out = small_disk.root / "results" / "activations" / "activations.h5"
    if small_disk.tmpfs:
        small_disk.leave_free(400_000)  # the file's first blocks fit, not all 30
    proc = subprocess.run(
        [sys.executable, "-c", FILLED_RUN, json.dumps(config), str(out), "tmpfs" if small_disk.tmpfs else "patched"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-3000:])  # an error, not a crash (SIGSEGV is -11)
    partial = f"{out}.partial"
    assert resstream_lines(proc) == [
        f"resstream: the disk filled up while writing {partial}: no space left on {small_disk.device}. "
        f"Fix: free space there (or set results: to a folder on a larger disk) and rerun; finished "
        f"outputs are kept"
    ], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and proc.stderr.count("No space left") <= 1, proc.stderr[-3000:]
    # the batches counted as written are those whose block reached the file
    written = [int(line.split(": ")[1].split("/")[0]) for line in proc.stderr.splitlines() if line.startswith("batch ")]
    assert written == [4 * (i + 1) for i in range(len(written))] and len(written) < 30
    if small_disk.tmpfs:  # free the device to read what stayed on it
        (small_disk.root / "filler").unlink()
    assert not out.exists()
    with h5py.File(partial, "r") as f:
        done = int(f.attrs["finished_rows"])
        assert done == (written[-1] if written else 0) and not f.attrs["complete"]
        if done:
            assert (f["images/ok"][:done]).all()  # every counted row reads back


def test_the_error_names_a_full_quota_too():
    assert disk_space.is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert disk_space.is_disk_full(RuntimeError("Can't write data (file write failed: ... No space left on device)"))
    assert not disk_space.is_disk_full(OSError(errno.EACCES, "Permission denied"))
