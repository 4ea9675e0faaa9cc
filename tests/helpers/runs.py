"""Finished workflow runs the slow tests share.

A run lives in one folder: a copy of the workflow (Snakefile, rules, scripts, resstream, ...), its
image folder ``data/`` (links into the sample), its config ``tiny.yaml`` and ``results/``, with
Snakemake's metadata and locks in ``.snakemake/`` there, never in this checkout.  The config names
``results`` and ``data`` relative to the folder, so a copy of the folder (``FinishedRun.copy``) is a
finished run too: same outputs, same mtimes, metadata that still matches its outputs, the same
image folder.

``shared_run`` (tests/conftest.py) is THE finished small run of the session: tests that only read it
use it as is; tests that change anything in it (a rerun, an edit of the library copy) copy it first.
"""

from __future__ import annotations

import fcntl
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from helpers.configs import tiny_config, tiny_config_file, write_config
from helpers.workflow import copy_workflow, link_images, smk
from resstream.analysis import summary as analysis

# Blocks 1.1 and 2.1 (the I of 2.1 is 2.0's O), channels 0-2, 2 FV steps, 24 images in batches of
# 2 (12 batches: a pass to kill in the middle), the atlas with channel FVs of O. docs/reruns.md's "What
# reruns" table is the rerun matrix of this study (tests/workflow/test_rerun.py).
SMALL_STUDY = {"blocks": ["1.1", "2.1"], "channels": [0, 1, 2]}
SMALL_IMAGES = 24
SMALL_ACTIVATIONS = {"batch_size": 2}
SMALL_ATLAS = {"channel_fvs": ["O"]}
SMALL_LAYERS = [
    "layer1.0.prerelu_out",
    "layer1.1.bn2",
    "layer1.1.prerelu_out",
    "layer2.0.prerelu_out",
    "layer2.1.bn2",
    "layer2.1.prerelu_out",
]  # I, B, O of 1.1 and 2.1


@dataclass(frozen=True)
class FinishedRun:
    root: Path

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def config_file(self) -> Path:
        return self.root / "tiny.yaml"

    @property
    def config(self) -> dict:
        """The run's own config (relative ``results`` and ``dataset.path``), a fresh copy each time."""
        return yaml.safe_load(self.config_file.read_text())

    def smk(self, *args, **kwargs):
        """Snakemake in the run's folder (``cwd``), as :func:`helpers.workflow.smk`.  Runs that are
        not dry runs take the results folder's lock (resstream/workflow/run_lock.py), so the xdist
        workers' runs in one shared folder take turns (an flock beside it) instead of refusing each
        other."""
        if "-n" in args or "--dry-run" in args:
            return smk(*args, cwd=self.root, **kwargs)
        with open(self.root / ".test-runs.lock", "w") as turn:
            fcntl.flock(turn, fcntl.LOCK_EX)
            return smk(*args, cwd=self.root, **kwargs)

    def copy(self, dest: Path) -> FinishedRun:
        """The folder copied to ``dest`` (links kept, mtimes kept): a run to change.  Its ``data`` is
        a link to this run's image folder, so that the dataset resolves to the same folder (the
        activations file records the resolved path)."""
        shutil.copytree(
            self.root, dest, symlinks=True, ignore=lambda folder, names: ["data"] if Path(folder) == self.root else []
        )
        (Path(dest) / "data").symlink_to(self.data.resolve(), target_is_directory=True)
        return FinishedRun(Path(dest))


def finish_run(root: Path, sample_dir: Path, n_images: int, targets=(), **config) -> FinishedRun:
    """A tiny study run to its ``targets`` (default: every output) in a workflow copy at ``root``."""
    copy_workflow(root)
    link_images(sample_dir, root / "data", n_images)
    run = FinishedRun(root)
    write_config(run.config_file, tiny_config("results", "data", **config))
    run.smk(*targets, "--cores", "2", "--configfile", "demo.yaml", run.config_file.name, timeout=900)
    return run


def finish_small_run(root: Path, sample_dir: Path) -> FinishedRun:
    return finish_run(
        root, sample_dir, SMALL_IMAGES, study=SMALL_STUDY, activations=SMALL_ACTIVATIONS, atlas=SMALL_ATLAS
    )


def arch_run(tmp: Path, sample_dir: Path, arch: str, blocks: list[str], extra_targets=(), **sections) -> Path:
    """One arch through the workflow to its summary and Fig 2 (random weights, ``blocks``, channels
    0-1, 3 FV steps, 20 images) and ``extra_targets``, with the results in ``tmp/results``; returns
    that folder.  ``sections``: more config (``compare``)."""
    data = link_images(sample_dir, tmp / "data", n=20)
    cfg = tiny_config_file(
        tmp, data, model={"arch": arch}, study={"blocks": blocks, "channels": [0, 1]}, fv={"steps": 3}, **sections
    )
    results = tmp / "results"
    smk(
        analysis.summary_json(str(results)),
        analysis.figure_file(str(results), "fig2", "png"),
        *extra_targets,
        "--cores",
        "2",
        "--configfile",
        cfg,
    )
    return results


def output_stamps(results: Path) -> dict[str, tuple[int, int]]:
    """{file: (mtime_ns, size)} of everything under ``results``: what a read-only use must keep."""
    return {
        str(p.relative_to(results)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(results.rglob("*"))
        if p.is_file()
    }
