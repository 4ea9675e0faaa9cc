"""GPU slot pinning, checked with lock files and a fake device list (no GPU needed)."""

import os
import subprocess
import sys

from helpers import REPO

CLAIM = """
import os, sys, time
sys.path.insert(0, {repo!r})
from resstream.base.gpu_slots import pin_gpu
gpu = pin_gpu({lock!r}, poll_seconds=0.1)
print(gpu, os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
time.sleep({hold})
"""


def claim(lock, hold, env):
    return subprocess.Popen(
        [sys.executable, "-c", CLAIM.format(repo=str(REPO), lock=str(lock), hold=hold)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_concurrent_jobs_get_distinct_devices_and_a_third_waits(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="0,1")
    first, second = claim(tmp_path, 3, env), claim(tmp_path, 3, env)
    got = sorted([first.stdout.readline().split()[0], second.stdout.readline().split()[0]])
    assert got == ["0", "1"]
    third = claim(tmp_path, 0, env)  # must wait for a free device, then take it
    out, err = third.communicate(timeout=30)
    assert out.split()[0] in ("0", "1") and "waiting" in err
    first.wait(), second.wait()


def test_single_or_no_gpu_needs_no_slot(tmp_path):
    from resstream.base.gpu_slots import pin_gpu

    os.environ["CUDA_VISIBLE_DEVICES"] = "3"
    try:
        assert pin_gpu(str(tmp_path)) == "3"
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        assert pin_gpu(str(tmp_path)) is None
    finally:
        del os.environ["CUDA_VISIBLE_DEVICES"]
    assert not os.listdir(tmp_path)
