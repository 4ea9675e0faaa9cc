"""The tests' one Snakemake runner (``smk``: snakemake in a subprocess, in the checkout or in a copy
of the workflow), dry-run plans, symlinked image folders, and HDF5 comparisons of run outputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

from helpers import REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
FV_LAYERS_11 = ["layer1.0.prerelu_out", "layer1.1.bn2", "layer1.1.prerelu_out"]  # I, B, O of 1.1
WORKFLOW = ("Snakefile", "rules", "scripts", "resstream", "envs", "report", "profiles", "config.yaml", "demo.yaml")


def link_images(sample_dir: Path, dest: Path, n: int = 20, offset: int = 0) -> Path:
    """A class-folder dataset of one image from each of n sample classes, as symlinks."""
    for cls in sorted(os.listdir(sample_dir))[offset : offset + n]:
        (dest / cls).mkdir(parents=True)
        first = sorted(os.listdir(sample_dir / cls))[0]
        (dest / cls / first).symlink_to(sample_dir / cls / first)
    return dest


def copy_workflow(dest):
    """The workflow's files (not tests, results or caches) in ``dest``, to run (with Snakemake's
    metadata and locks there, not in this checkout) and edit there."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def smk(*args, env=None, check=True, timeout=600, cwd=REPO):
    """``python -m snakemake ARGS`` in ``cwd`` (the checkout, or a copy of the workflow); with
    ``check``, a failed run raises with the end of its output."""
    proc = subprocess.run(
        SNAKEMAKE + [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(map(str, args))} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def resstream_lines(proc: subprocess.CompletedProcess, stdout: bool = False) -> list[str]:
    """The lines a command's stderr (and with ``stdout`` its stdout) holds from resstream itself:
    ``resstream: <problem>. Fix: ...`` and notes."""
    text = (proc.stdout if stdout else "") + proc.stderr
    return [line for line in text.splitlines() if line.startswith("resstream:")]


def one_line(proc: subprocess.CompletedProcess, stdout: bool = False) -> str:
    """The one ``resstream:`` line of a command that stopped on bad input."""
    lines = resstream_lines(proc, stdout)
    assert len(lines) == 1, ((proc.stdout if stdout else "") + proc.stderr)[-3000:]
    return lines[0]


def planned_jobs(*args, cwd=REPO) -> dict[str, list[dict]]:
    """Dry run: {rule: [wildcards dict, ...]} of the jobs snakemake would run now."""
    proc = smk("-n", "--cores", "2", *args, cwd=cwd)
    jobs: dict[str, list[dict]] = {}
    rule = None
    for line in (proc.stdout + proc.stderr).splitlines():
        s = line.strip()
        if s.startswith(("rule ", "localrule ")) and s.endswith(":"):
            rule = s.split()[1].rstrip(":")
            jobs.setdefault(rule, []).append({})
        elif rule and s.startswith("wildcards:"):
            jobs[rule][-1] = dict(kv.split("=", 1) for kv in s[len("wildcards:") :].strip().split(", "))
        elif not s:
            rule = None
    return jobs


def tree_bytes(root) -> dict[str, bytes]:
    """Every file under ``root``: relative path -> bytes."""
    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def h5_content(path) -> dict:
    content = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            content[name] = obj[()]

    with h5py.File(path, "r") as f:
        f.visititems(visit)
        content["@attrs"] = {k: str(f.attrs[k]) for k in f.attrs}
    return content


def assert_same_h5_content(ca: dict, cb: dict, ignore_attrs=(), where=""):
    """Two :func:`h5_content` results hold the same datasets (NaN equal to NaN) and attributes."""
    assert sorted(ca) == sorted(cb), where
    for key in ca:
        if key == "@attrs":
            strip = lambda d: {k: v for k, v in d.items() if k not in ignore_attrs}  # noqa: E731
            assert strip(ca[key]) == strip(cb[key]), (where, key)
        elif ca[key].dtype.kind in "fc":
            np.testing.assert_array_equal(ca[key], cb[key], err_msg=f"{where}:{key}")
        else:
            assert np.array_equal(ca[key], cb[key]), f"{where}:{key}"


def assert_same_h5(a, b, ignore_attrs=("seconds",)):
    assert_same_h5_content(h5_content(a), h5_content(b), ignore_attrs, where=str(a))
