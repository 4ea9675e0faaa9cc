"""Every file a job reads is declared: on a copy of the finished small run (with a comparison of that
run), an edit of each file some job reads but once did not declare (an image of the dataset, a run's
FV table for the comparison, a table's JSON sidecar, the scorecard's sidecar) replans, in a dry run,
exactly the jobs that read it and what reads their outputs; and each rule declares its stage's job
spec (resstream/<stage>/jobs.py), as the finished run's Snakemake records show.

Dry runs only plan on mtimes and params (``--rerun-triggers mtime params``): a copy of the run names
the paper's claims file by another absolute path, an input change nothing else is about."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers.configs import changed_config_file
from helpers.rerun_matrix import Job, parse_jobs
from helpers.workflow import smk

COMPARE = {"compare": {"runs": {"small": "results"}, "results": "comparisons"}}


def dry_run(run, config, *args) -> str:
    proc = smk(
        "-n",
        "--cores",
        "2",
        "--configfile",
        "demo.yaml",
        config,
        "--rerun-triggers",
        "mtime",
        "params",
        *args,
        cwd=run.root,
    )
    return proc.stdout + proc.stderr


def planned(run, config) -> set[Job]:
    return set(parse_jobs(dry_run(run, config))[0])


@pytest.fixture(scope="module")
def compared_run(shared_run, tmp_path_factory):
    """A copy of the small run whose image folder is its own (links to the same images) and whose
    comparison of itself is made: nothing left to do."""
    run = shared_run.copy(tmp_path_factory.mktemp("declared") / "run")
    (run.root / "data").unlink()
    shutil.copytree(shared_run.data, run.data, symlinks=True)
    config = changed_config_file(run.config_file, run.root, COMPARE)
    run.smk(
        "compare_models", "--cores", "1", "--rerun-triggers", "mtime", "params", "--configfile", "demo.yaml", config
    )
    assert planned(run, config) == set()
    return run, config


def edit(run, path: Path) -> tuple[bytes, int]:
    """Change ``path``'s bytes (Snakemake skips an input whose checksum it recorded and that only
    got a newer mtime) and give it an mtime after every output of the run; returns what to restore."""
    before = path.read_bytes(), path.stat().st_mtime_ns
    newest = max(p.stat().st_mtime for p in run.root.rglob("*") if p.is_file() and not p.is_symlink())
    path.write_bytes(before[0] + b" ")
    os.utime(path, (newest + 10, newest + 10))
    return before


@pytest.mark.parametrize(
    "edited, reader",
    [
        ("results/analysis/1.1/fv_table.csv", "compare_models"),  # read by compare.runs' run, not only by name
        ("results/analysis/1.1/fv_table.json", "compare_models"),  # every table reader reads its sidecar too
        ("results/analysis/1.1/fv_table.json", "atlas_block"),
        ("results/analysis/2.1/imagenet_raw.json", "metric_table"),
        ("results/paper_check.json", "atlas_index"),  # the atlas's scorecard section reads it
    ],
)
def test_an_edited_input_replans_its_readers(compared_run, edited, reader):
    run, config = compared_run
    jobs, dag = parse_jobs(dry_run(run, config, "--forceall"))
    path = run.root / edited
    readers = {
        job for job in jobs if str(path.resolve()) in {str(Path(run.root, f).resolve()) for f in dag.inputs[job]}
    }
    assert reader in {job.rule for job in readers}
    content, mtime = edit(run, path)
    try:
        got = planned(run, config)
    finally:
        path.write_bytes(content)
        os.utime(path, ns=(mtime, mtime))
    expected = dag.downstream(readers)
    assert got == expected, (sorted(map(str, got - expected)), sorted(map(str, expected - got)))


def test_a_changed_image_replans_the_jobs_that_read_images(compared_run):
    """Another picture under an image's name (its size changes): the manifest's listing fingerprint
    changes, so the manifest job reruns and with it the pass, the exemplar grids and the ImageNet
    measurements (and what reads them); the FVs and the model card stay."""
    run, config = compared_run
    jobs, dag = parse_jobs(dry_run(run, config, "--forceall"))
    images = sorted(p for p in run.data.rglob("*") if p.is_symlink() and p.is_file())
    first, other = images[0], next(p for p in images if p.stat().st_size != images[0].stat().st_size)
    target = os.readlink(first)
    first.unlink()
    shutil.copyfile(other, first)
    try:
        got = planned(run, config)
    finally:
        first.unlink()
        first.symlink_to(target)
    manifest = {job for job in jobs if job.rule == "dataset_manifest"}
    assert got == dag.downstream(manifest), sorted(map(str, got ^ dag.downstream(manifest)))
    assert {"activations", "exemplar_grids", "measure_imagenet"} <= {job.rule for job in got}
    assert not {"fv_chunk", "fv_channel_chunk", "model_card"} & {job.rule for job in got}
    assert planned(run, config) == set()  # the link back: the listing is the manifest's again
