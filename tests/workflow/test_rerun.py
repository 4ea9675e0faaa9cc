"""Reruns of a finished tiny study: each change of the rerun matrix replans exactly the jobs it
touches and what reads their outputs (docs/reruns.md's table, rendered by tests/helpers/rerun_matrix.py), and
a run killed (SIGKILL to the whole process group) in the middle of the FV stage or of the dataset
pass resumes to outputs bit-identical to those of the uninterrupted run.

The finished run is the session's small run (tests/helpers/runs.py: blocks 1.1 and 2.1, channels
0-2, 2 FV steps, 24 images in batches of 2, atlas on with channel FVs of O): the FV layers are
1.1's I (= 1.0's O), B, O and 2.1's I (= 2.0's O), B, O.  The matrix only plans (dry runs); its
library edits go to the run's own copy of the workflow, never to this checkout, and are undone.
(A copy of the run would not do: its workflow copy sits at another path, and paper_check's input
set names the paper claims file by its absolute path.)"""

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from helpers import DOCS
from helpers.configs import changed_config_file, write_config
from helpers.rerun_matrix import Job, parse_jobs, table
from helpers.runs import SMALL_LAYERS
from helpers.workflow import SNAKEMAKE, assert_same_h5, link_images, smk

KILL_LAYERS = SMALL_LAYERS[:3]  # block 1.1's FVs: enough to kill a run between chunks


def fv_targets(results, layers=SMALL_LAYERS):
    return [f"{results}/fv/{layer}/c0000-0063" for layer in layers]


def dry_run(workflow, *args) -> str:
    proc = smk("-n", "--cores", "2", "--configfile", "demo.yaml", *args, cwd=workflow)
    return proc.stdout + proc.stderr


def planned(workflow, *args) -> set[Job]:
    return set(parse_jobs(dry_run(workflow, *args))[0])


def test_rerun_matrix(shared_run, sample_dir, tmp_path):
    """Each change replans exactly the jobs it touches directly (the seeds below) and the jobs that
    read their outputs, directly or not, and nothing else; docs/reruns.md's table is this matrix."""
    workflow, config = shared_run.root, shared_run.config_file
    assert planned(workflow, config) == set()  # nothing to do after a complete run
    jobs, dag = parse_jobs(dry_run(workflow, config, "--forceall"))  # the whole DAG, inputs and outputs

    def seeds(rule, **wildcards):
        return {j for j in jobs if j.rule == rule and all(dict(j.wildcards).get(k) == v for k, v in wildcards.items())}

    def rules(*names):
        return {j for j in jobs if j.rule in names}

    other_images = link_images(sample_dir, tmp_path / "other", 12, offset=100)
    block_21_layers = ("layer2.0.prerelu_out", "layer2.1.bn2", "layer2.1.prerelu_out")  # its I, B, O
    # change, how to make it, the jobs whose params or code it changes
    matrix = [
        (
            'one block\'s `fv.overrides` (`{"2.1": {steps: 3}}`)',
            {"fv": {"overrides": {"2.1": {"steps": 3}}}},
            # a simple block's I is the previous block's O and keeps that block's settings
            seeds("fv_chunk", layer="layer2.1.bn2")
            | seeds("fv_chunk", layer="layer2.1.prerelu_out")
            | seeds("fv_channel_chunk", layer="layer2.1.prerelu_out"),
        ),
        (
            'one block\'s channel list (`study.channels_by_block: {"2.1": [0, 1]}`)',
            {"study": {"channels_by_block": {"2.1": [0, 1]}}},
            rules("model_card")
            | {j for layer in block_21_layers for j in seeds("fv_chunk", layer=layer)}
            | seeds("fv_channel_chunk", layer="layer2.1.prerelu_out")
            | {j for layer in block_21_layers + ("layer2.0", "layer2.1") for j in seeds("exemplar_grids", layer=layer)}
            | seeds("measure_fv", block="2.1")
            | seeds("measure_imagenet", block="2.1"),
        ),
        ("`analysis.mix_factor: 2`", {"analysis": {"mix_factor": 2}}, rules("metric_table")),
        ("`analysis.scale_rule: mid_only`", {"analysis": {"scale_rule": "mid_only"}}, rules("metric_table")),
        # the manifest lists the other folder; the pass names it (its param dataset)
        (
            "`dataset.path` (another image folder)",
            {"dataset": {"path": str(other_images)}},
            rules("dataset_manifest", "activations"),
        ),
        ("`atlas.fv_px: 96`", {"atlas": {"fv_px": 96}}, rules("atlas_block")),
        (
            "an edit of `resstream/analysis/metrics.py`",
            "analysis/metrics.py",
            rules("metric_table", "analysis_summary", "paper_check", "atlas_block", "atlas_index")
            | {j for j in jobs if j.rule.startswith("fig")},
        ),
        ("an edit of `resstream/fv/render.py`", "fv/render.py", rules("fv_chunk", "fv_channel_chunk")),
        (
            "an edit of `resstream/atlas/templates/unit.html.j2`",
            "atlas/templates/unit.html.j2",
            rules("atlas_block", "atlas_index"),
        ),
        ("`fv.threads: 2`", {"fv": {"threads": 2}}, set()),
        ("`activations.batch_size: 4`", {"activations": {"batch_size": 4}}, set()),
    ]

    def replanned(how) -> set[Job]:
        if not isinstance(how, str):
            return planned(workflow, changed_config_file(config, tmp_path, how))
        module = workflow / "resstream" / how  # a one-line comment at the end, in the copy only
        source = module.read_bytes()
        try:
            module.write_bytes(source + b"# an edit\n")
            return planned(workflow, config)
        finally:
            module.write_bytes(source)

    # setting changes two at a time (2 cores); library edits one by one (they share the copy)
    with ThreadPoolExecutor(2) as pool:
        settings = {change: pool.submit(replanned, how) for change, how, _ in matrix if not isinstance(how, str)}
        got = {change: future.result() for change, future in settings.items()}
    got.update({change: replanned(how) for change, how, _ in matrix if isinstance(how, str)})
    rows = []
    for change, _how, touched in matrix:
        expected = dag.downstream(touched)
        assert got[change] == expected, (change, sorted(got[change] - expected), sorted(expected - got[change]))
        rows.append((change, got[change]))
    assert planned(workflow, config) == set()  # the copy is back as it was
    page = (DOCS / "reruns.md").read_text()
    assert table(rows) in page, "docs/reruns.md's rerun table differs from the measured matrix:\n" + table(rows)


def run_and_kill(args, ready, cwd, timeout=300):
    """Start snakemake in its own process group, SIGKILL the group as soon as ready() holds."""
    proc = subprocess.Popen(
        SNAKEMAKE + [str(a) for a in args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run never reached the kill point"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def finished_chunks(results):
    return [layer for layer in KILL_LAYERS if (results / "fv" / layer / "c0000-0063").is_dir()]


def test_killed_runs_resume_to_the_uninterrupted_outputs(shared_run, tmp_path):
    """The shared run's study made again under ``killed/`` in a copy of its folder (the same
    workflow copy and image folder ``data``), killed and resumed, against the shared run's outputs."""
    ref = shared_run.results
    work = shared_run.copy(tmp_path / "run")
    results = work.root / "killed"
    config = write_config(work.root / "killed.yaml", {**work.config, "results": "killed"})
    run = ["--cores", "2", "--configfile", "demo.yaml", config]

    # FV stage: killed as soon as the first chunk folder is in place (others are in flight)
    run_and_kill(fv_targets("killed", KILL_LAYERS) + run, lambda: finished_chunks(results), work.root)
    done = finished_chunks(results)
    assert 1 <= len(done) < len(KILL_LAYERS)
    for layer in done:  # whatever has its final name is complete
        assert_same_h5(results / "fv" / layer / "c0000-0063" / "fv.h5", ref / "fv" / layer / "c0000-0063" / "fv.h5")

    # dataset pass (its outputs do not overlap the killed FV run's locks): killed after its
    # first batch is logged
    log = results / "logs" / "activations.log"
    h5 = results / "activations" / "activations.h5"
    run_and_kill([h5.relative_to(work.root)] + run, lambda: log.exists() and "batch 1/12" in log.read_text(), work.root)
    assert not h5.exists() and (h5.parent / "activations.h5.partial").exists()

    # the user's rerun: unlock, then the same command (rerun-incomplete is in the default profile)
    work.smk("--unlock", *run)
    proc = work.smk(*fv_targets("killed", KILL_LAYERS), h5.relative_to(work.root), *run)
    # the missing chunks, the dataset pass, and maybe a finished chunk whose job snakemake had not
    # yet recorded as done (rerun as incomplete)
    redone = {f"{n} of {n} steps (100%) done" for n in range(len(KILL_LAYERS) - len(done) + 1, len(KILL_LAYERS) + 2)}
    assert any(line in proc.stderr for line in redone), proc.stderr[-3000:]
    for layer in KILL_LAYERS:
        folder = results / "fv" / layer
        assert sorted(os.listdir(folder)) == ["c0000-0063"]  # no partial folder is left over
        chunk, ref_chunk = folder / "c0000-0063", ref / "fv" / layer / "c0000-0063"
        assert (chunk / "unit0000.png").read_bytes() == (ref_chunk / "unit0000.png").read_bytes()
        assert_same_h5(chunk / "fv.h5", ref_chunk / "fv.h5")
    assert "resuming" in log.read_text()
    assert sorted(os.listdir(h5.parent)) == ["activations.h5"]
    assert_same_h5(h5, ref / "activations" / "activations.h5")
