"""The Snakemake wiring: demo DAG, lint, formatting, one-line errors, the model card rule."""

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def smk(*args, check=True, timeout=600, env=None):
    proc = subprocess.run(SNAKEMAKE + list(args), cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def test_demo_dry_run_shows_the_dag(tmp_path, sample_dir):
    proc = smk("-n", "--cores", "2", "--configfile", "demo.yaml", "--config", f"results={tmp_path}", f"dataset={{path: {sample_dir}}}")
    assert "model_card" in proc.stdout


def test_full_study_dry_run(sample_dir, tmp_path):
    # pretrained weights absent and no network (a dead proxy): a dry run plans without fetching them
    dead = "http://127.0.0.1:9"
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "torch"), https_proxy=dead, HTTPS_PROXY=dead, http_proxy=dead, HTTP_PROXY=dead)
    proc = smk("-n", "--cores", "2", "--config", f"dataset={{path: {sample_dir}}}", "results=/tmp/resstream-nothing", env=env)
    assert "model_card" in proc.stdout and "fv_chunk" in proc.stdout
    assert not (tmp_path / "torch").exists()
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    notes = [line for line in proc.stderr.splitlines() if line.startswith("resstream:")]
    assert notes == [f"resstream: note: weights resnet18 IMAGENET1K_V1 are not in torch's hub cache ({cached}); the run "
                     f"downloads them before its first job (model.allow_download)."]
    # with downloads disabled the dry run stops as the real run would, naming the file to copy
    offline = tmp_path / "offline.yaml"
    offline.write_text("model:\n  allow_download: false\n")
    proc = smk("-n", "--cores", "2", "--configfile", "config.yaml", str(offline), "--config", f"dataset={{path: {sample_dir}}}",
               "results=/tmp/resstream-nothing", env=env, check=False)
    assert proc.returncode != 0
    assert [line for line in proc.stderr.splitlines() if line.startswith("resstream:")] == [
        f"resstream: weights resnet18 IMAGENET1K_V1 are not in torch's hub cache ({cached}) and downloads are "
        f"disabled. Fix: copy resnet18-f37072fd.pth there (or point TORCH_HOME at a cache holding it), or set "
        f"model.weights to a local checkpoint path; for a test run use model.weights: random:0."]


def job_counts(proc) -> dict[str, int]:
    """``{rule: jobs}`` from a dry run's "Job stats" table (with ``total``)."""
    lines = proc.stdout.splitlines()
    start = lines.index("Job stats:") + 3  # header, column names, dashes
    counts = {}
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_readme_job_counts_are_those_of_a_dry_run(tmp_path, sample_dir):
    """The README's job counts (paper study, resnet50 demo) are what a dry run plans today."""
    counts = {}
    for configfile in ("config.yaml", "demo-resnet50.yaml"):
        proc = smk("-n", "--cores", "2", "--configfile", configfile, "--config", f"results={tmp_path / configfile}",
                   f"dataset={{path: {sample_dir}}}")
        counts[configfile] = job_counts(proc)
    paper, r50 = counts["config.yaml"], counts["demo-resnet50.yaml"]
    readme = " ".join((REPO / "README.md").read_text().split())  # one space between words
    groups = -(-paper["fv_chunk"] // 8)  # profiles/slurm: group-components fv: 8
    assert (f"The full study is {paper['total']} jobs, {paper['fv_chunk']} of them FV chunks, i.e. {groups} FV "
            f"submissions, and {paper['fv_channel_chunk']} of them the atlas's channel-FV chunks") in readme
    assert f"--config 'dataset={{path: /data/imagenet/val}}' # {paper['total']} jobs" in readme
    measurements = r50["measure_fv"] + r50["measure_imagenet"]
    assert (f"demo-resnet50.yaml` ({r50['total']} jobs: {r50['fv_chunk']} FV chunks, {r50['fv_channel_chunk']} atlas "
            f"channel-FV chunks, one 1,000-image activation pass, {measurements} measurements,") in readme


def test_lint_is_clean():
    proc = smk("--lint", "--configfile", "demo.yaml")
    assert "Congratulations" in proc.stdout + proc.stderr


def test_lint_without_a_config_needs_neither_weights_nor_data(tmp_path):
    """config.yaml alone: IMAGENET1K_V1 not in this (empty) hub cache, no network, dataset.path unset."""
    dead = "http://127.0.0.1:9"
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "torch"), https_proxy=dead, HTTPS_PROXY=dead)
    proc = smk("--lint", env=env)
    assert "Congratulations" in proc.stdout + proc.stderr
    assert not (tmp_path / "torch").exists()


def test_snakefmt_is_clean():
    proc = subprocess.run([str(Path(sys.executable).parent / "snakefmt"), "--check", "Snakefile", "rules/"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_default_config_without_dataset_says_what_to_set():
    proc = smk("-n", "--cores", "2", check=False)
    assert proc.returncode != 0
    lines = [l for l in proc.stderr.splitlines() if l.startswith("resstream:")]
    assert len(lines) == 1
    assert "dataset.path" in lines[0] and "make demo" in lines[0]


def test_bad_config_names_the_key(tmp_path, sample_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text("fv:\n  steps: -5\n")
    proc = smk("-n", "--configfile", "demo.yaml", str(bad), check=False)
    assert proc.returncode != 0
    assert "resstream: invalid config: fv.steps: -5 is less than the minimum of 1" in proc.stderr


def test_model_card_rule_runs_and_records_random_weights(tmp_path, sample_dir):
    smk(f"{tmp_path}/model_card.json", "--cores", "2", "--configfile", "demo.yaml", "--config", f"results={tmp_path}",
        f"dataset={{path: {sample_dir}}}")
    card = json.loads((tmp_path / "model_card.json").read_text())
    assert card["weights"]["kind"] == "random" and "RANDOM" in card["weights"]["label"]
    assert [r["center"] for r in card["layers"] if r["role"] == "B"] == [28, 14, 14, 7, 7, 3, 3]
    import pandas as pd  # a plain CSV: read as is, no comment lines, the weights in the last column

    table = pd.read_csv(tmp_path / "model_card.csv")
    assert list(table["center"][table["role"] == "B"]) == [28, 14, 14, 7, 7, 3, 3]
    assert list(table.columns)[-1] == "weights" and set(table["weights"]) == {card["weights"]["label"]}


def test_a_custom_checkpoint_is_recorded_by_its_sha256(tmp_path, sample_dir):
    """model.checkpoint: any: the model card (the first job) records the file's sha256 and labels it."""
    import hashlib

    import pandas as pd
    import torch

    from resstream.weights import load_model

    model, _ = load_model("resnet18", "random:4")
    ckpt = tmp_path / "finetuned.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 7}, ckpt)
    custom = tmp_path / "custom.yaml"
    custom.write_text(f"results: {tmp_path}\nmodel:\n  weights: {ckpt}\n  checkpoint: any\ndataset:\n  path: {sample_dir}\n")
    smk(f"{tmp_path}/model_card.json", "--cores", "2", "--configfile", "demo.yaml", str(custom))
    weights = json.loads((tmp_path / "model_card.json").read_text())["weights"]
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert weights["kind"] == "custom" and weights["file_sha256"] == digest and weights["source"] == str(ckpt)
    label = f"resnet18 custom checkpoint finetuned.pth (file sha256 {digest[:12]}, not torchvision's weights)"
    assert weights["label"] == label and set(pd.read_csv(tmp_path / "model_card.csv")["weights"]) == {label}


def test_missing_weights_stop_before_any_job_with_one_line(tmp_path, sample_dir):
    # checked in snakemake's main process before any job starts (tests/test_bad_input.py: and
    # before snakemake removes outdated outputs)
    proc = smk(f"{tmp_path}/model_card.json", "--cores", "1", "--configfile", "demo.yaml", "--config",
               f"results={tmp_path}", f"model={{weights: {tmp_path}/resnet18-f37072fd.pth}}", f"dataset={{path: {sample_dir}}}",
               check=False)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("resstream:")]
    assert len(lines) == 1 and "resnet18-f37072fd.pth does not exist" in lines[0]
    assert not (tmp_path / "model_card.json").exists()
