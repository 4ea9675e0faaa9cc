"""Reruns of a finished tiny study: each change of the rerun matrix replans exactly the jobs it
touches and what reads their outputs (the README's table, rendered by tests/rerun_matrix.py), and
a run killed (SIGKILL to the whole process group) in the middle of the FV stage or of the dataset
pass resumes to outputs bit-identical to those of the uninterrupted run.

Blocks 1.1 and 2.1, channel 0, 2 FV steps, 24 images (batches of 2), atlas on (channel FVs of O):
the FV layers are 1.1's I (= 1.0's O), B, O and 2.1's I (= 2.0's O), B, O.  The finished run is
made in a copy of the workflow (Snakefile, rules, scripts, resstream), so that the library edits
of the matrix never touch this checkout."""

import os
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from conftest import REPO
from rerun_matrix import Job, parse_jobs, table
from workflow_helpers import SNAKEMAKE, assert_same_h5, copy_workflow, link_images, smk, tiny_config

LAYERS = ["layer1.0.prerelu_out", "layer1.1.bn2", "layer1.1.prerelu_out",
          "layer2.0.prerelu_out", "layer2.1.bn2", "layer2.1.prerelu_out"]
STUDY = {"blocks": ["1.1", "2.1"], "channels": [0]}
ACTIVATIONS = {"batch_size": 2}
KILL_LAYERS = LAYERS[:3]  # block 1.1's FVs: enough to kill a run between chunks


def fv_targets(results, layers=LAYERS):
    return [f"{results}/fv/{layer}/c0000-0063" for layer in layers]


@pytest.fixture(scope="module")
def reference(sample_dir, tmp_path_factory):
    """One uninterrupted run of the whole tiny study, in a copy of the workflow."""
    tmp = tmp_path_factory.mktemp("reference")
    data = link_images(sample_dir, tmp / "data", 24)
    config = tiny_config(tmp, data, study=STUDY, activations=ACTIVATIONS)
    workflow = copy_workflow(tmp / "workflow")
    smk("--cores", "2", "--configfile", "demo.yaml", config, cwd=workflow)
    return tmp, data, config, workflow


def dry_run(workflow, *args) -> str:
    proc = smk("-n", "--cores", "2", "--configfile", "demo.yaml", *args, cwd=workflow)
    return proc.stdout + proc.stderr


def planned(workflow, *args) -> set[Job]:
    return set(parse_jobs(dry_run(workflow, *args))[0])


def with_config(config, tmp_path, change: dict):
    cfg = yaml.safe_load(config.read_text())
    for section, values in change.items():
        cfg.setdefault(section, {}).update(values) if isinstance(values, dict) else cfg.__setitem__(section, values)
    path = tmp_path / f"changed-{uuid.uuid4().hex}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_rerun_matrix(reference, sample_dir, tmp_path):
    """Each change replans exactly the jobs it touches directly (the seeds below) and the jobs that
    read their outputs, directly or not, and nothing else; the README's table is this matrix."""
    tmp, _data, config, workflow = reference
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
        ('one block\'s `fv.overrides` (`{"2.1": {steps: 3}}`)', {"fv": {"overrides": {"2.1": {"steps": 3}}}},
         # a simple block's I is the previous block's O and keeps that block's settings
         seeds("fv_chunk", layer="layer2.1.bn2") | seeds("fv_chunk", layer="layer2.1.prerelu_out")
         | seeds("fv_channel_chunk", layer="layer2.1.prerelu_out")),
        ('one block\'s channel list (`study.channels_by_block: {"2.1": [0, 1]}`)',
         {"study": {"channels_by_block": {"2.1": [0, 1]}}},
         rules("model_card") | {j for layer in block_21_layers for j in seeds("fv_chunk", layer=layer)}
         | seeds("fv_channel_chunk", layer="layer2.1.prerelu_out")
         | {j for layer in block_21_layers + ("layer2.0", "layer2.1") for j in seeds("exemplar_grids", layer=layer)}
         | seeds("measure_fv", block="2.1") | seeds("measure_imagenet", block="2.1")),
        ("`analysis.mix_factor: 2`", {"analysis": {"mix_factor": 2}}, rules("metric_table")),
        ("`analysis.scale_rule: mid_only`", {"analysis": {"scale_rule": "mid_only"}}, rules("metric_table")),
        ("`dataset.path` (another image folder)", {"dataset": {"path": str(other_images)}}, rules("activations")),
        ("`atlas.fv_px: 96`", {"atlas": {"fv_px": 96}}, rules("atlas_block")),
        ("an edit of `resstream/analysis/metrics.py`", "analysis/metrics.py",
         rules("metric_table", "analysis_summary", "paper_check", "atlas_block", "atlas_index")
         | {j for j in jobs if j.rule.startswith("fig")}),
        ("an edit of `resstream/fv/render.py`", "fv/render.py", rules("fv_chunk", "fv_channel_chunk")),
        ("an edit of `resstream/atlas/build.py`", "atlas/build.py", rules("atlas_block", "atlas_index")),
        ("`fv.threads: 2`", {"fv": {"threads": 2}}, set()),
        ("`activations.batch_size: 4`", {"activations": {"batch_size": 4}}, set()),
    ]

    def replanned(how) -> set[Job]:
        if not isinstance(how, str):
            return planned(workflow, with_config(config, tmp_path, how))
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
    readme = (REPO / "README.md").read_text()
    assert table(rows) in readme, "README's rerun table differs from the measured matrix:\n" + table(rows)


def run_and_kill(args, ready, timeout=300):
    """Start snakemake in its own process group, SIGKILL the group as soon as ready() holds."""
    proc = subprocess.Popen(SNAKEMAKE + [str(a) for a in args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
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


def test_killed_runs_resume_to_the_uninterrupted_outputs(reference, tmp_path):
    ref_tmp, data, ref_config, _workflow = reference
    ref = ref_tmp / "results"
    results = tmp_path / "results"
    cfg = yaml.safe_load(ref_config.read_text())
    cfg["results"] = str(results)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    run = ["--cores", "2", "--configfile", "demo.yaml", config]

    # FV stage: killed as soon as the first chunk folder is in place (others are in flight)
    run_and_kill(fv_targets(results, KILL_LAYERS) + run, lambda: finished_chunks(results))
    done = finished_chunks(results)
    assert 1 <= len(done) < len(KILL_LAYERS)
    for layer in done:  # whatever has its final name is complete
        assert_same_h5(results / "fv" / layer / "c0000-0063" / "fv.h5", ref / "fv" / layer / "c0000-0063" / "fv.h5")

    # dataset pass (its outputs do not overlap the killed FV run's locks): killed after its
    # first batch is logged
    log = results / "logs" / "activations.log"
    h5 = results / "activations" / "activations.h5"
    run_and_kill([h5] + run, lambda: log.exists() and "batch 1/12" in log.read_text())
    assert not h5.exists() and (h5.parent / "activations.h5.partial").exists()

    # the user's rerun: unlock, then the same command (rerun-incomplete is in the default profile)
    smk("--unlock", *run)
    proc = smk(*fv_targets(results, KILL_LAYERS), h5, *run)
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
