"""Reruns of a finished tiny study: a changed setting replans only the jobs it affects, and a run
killed (SIGKILL to the whole process group) in the middle of the FV stage or of the dataset pass
resumes to outputs bit-identical to those of the uninterrupted run.

Blocks 1.1 and 2.1, channel 0, 2 FV steps, 24 images (batches of 2): the FV layers are 1.1's I
(= 1.0's O), B, O and 2.1's I (= 2.0's O), B, O."""

import os
import signal
import subprocess
import time

import pytest
import yaml

from conftest import REPO
from workflow_helpers import SNAKEMAKE, assert_same_h5, link_images, planned_jobs, smk, tiny_config

LAYERS = ["layer1.0.prerelu_out", "layer1.1.bn2", "layer1.1.prerelu_out",
          "layer2.0.prerelu_out", "layer2.1.bn2", "layer2.1.prerelu_out"]
STUDY = {"blocks": ["1.1", "2.1"], "channels": [0]}
ACTIVATIONS = {"batch_size": 2}
KILL_LAYERS = LAYERS[:3]  # block 1.1's FVs: enough to kill a run between chunks


def fv_targets(results, layers=LAYERS):
    return [f"{results}/fv/{layer}/c0000-0063" for layer in layers]


def targets(results):
    """Everything but the analysis stage: model card, every FV chunk, activations, exemplar grids."""
    return ([f"{results}/model_card.json"] + fv_targets(results)
            + [f"{results}/activations/activations.h5", f"{results}/activations/exemplars"])


@pytest.fixture(scope="module")
def reference(sample_dir, tmp_path_factory):
    """One uninterrupted run of everything but the analysis stage."""
    tmp = tmp_path_factory.mktemp("reference")
    data = link_images(sample_dir, tmp / "data", 24)
    config = tiny_config(tmp, data, study=STUDY, activations=ACTIVATIONS)
    smk(*targets(tmp / "results"), "--cores", "2", "--configfile", "demo.yaml", config)
    return tmp, data, config


def test_a_changed_block_or_dataset_replans_only_what_depends_on_it(reference, sample_dir, tmp_path):
    tmp, _data, original = reference
    results = tmp / "results"
    config = tmp_path / "changed.yaml"
    config.write_text(original.read_text())
    run = ["--configfile", "demo.yaml", config]
    assert planned_jobs(*targets(results), *run) == {}  # nothing to do after a complete run

    # one block's FV setting: only its own FV layers (B and O; a simple block's I is the previous
    # block's O and keeps that block's settings) rerun
    cfg = yaml.safe_load(config.read_text())
    cfg["fv"]["overrides"] = {"2.1": {"steps": 3}}
    config.write_text(yaml.safe_dump(cfg))
    plan = planned_jobs(*run)  # the whole DAG
    assert sorted(j["layer"] for j in plan["fv_chunk"]) == ["layer2.1.bn2", "layer2.1.prerelu_out"]
    assert {"activations", "exemplar_grids", "model_card"}.isdisjoint(plan), plan
    # ... and the block's measurement reads them (the analysis stage never ran here, so all of it
    # is planned as missing: the FV and dataset stages are the check)
    assert {"block": "2.1"} in plan["measure_fv"]

    # another image folder: only the dataset pass and what reads it
    cfg["fv"]["overrides"] = {}
    cfg["dataset"]["path"] = str(link_images(sample_dir, tmp_path / "other", 12, offset=100))
    config.write_text(yaml.safe_dump(cfg))
    plan = planned_jobs(*run)
    assert plan["activations"] == [{}] and plan["exemplar_grids"] == [{}], plan
    assert "fv_chunk" not in plan and "model_card" not in plan
    assert sorted(j["block"] for j in plan["measure_imagenet"]) == ["1.1", "2.1"]


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
    ref_tmp, data, ref_config = reference
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
