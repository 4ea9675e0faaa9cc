"""The Snakemake wiring: demo DAG, lint, formatting, one-line errors, the model card rule."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from helpers import REPO, docs_text
from helpers.workflow import one_line, resstream_lines, smk


def test_demo_dry_run_shows_the_dag(tmp_path, sample_dir):
    proc = smk(
        "-n",
        "--cores",
        "2",
        "--configfile",
        "demo.yaml",
        "--config",
        f"results={tmp_path}",
        f"dataset={{path: {sample_dir}}}",
    )
    assert "model_card" in proc.stdout


def test_full_study_dry_run(sample_dir, tmp_path):
    # pretrained weights absent and no network (a dead proxy): a dry run plans without fetching them
    dead = "http://127.0.0.1:9"
    env = dict(
        os.environ,
        TORCH_HOME=str(tmp_path / "torch"),
        https_proxy=dead,
        HTTPS_PROXY=dead,
        http_proxy=dead,
        HTTP_PROXY=dead,
    )
    proc = smk(
        "-n", "--cores", "2", "--config", f"dataset={{path: {sample_dir}}}", "results=/tmp/resstream-nothing", env=env
    )
    assert "model_card" in proc.stdout and "fv_chunk" in proc.stdout
    assert not (tmp_path / "torch").exists()
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert resstream_lines(proc) == [
        f"resstream: note: weights resnet18 IMAGENET1K_V1 are not in torch's hub cache ({cached}); "
        f"the run downloads them before its first job (model.allow_download)."
    ]
    # with downloads disabled the dry run stops as the real run would, naming the file to copy
    offline = tmp_path / "offline.yaml"
    offline.write_text("model:\n  allow_download: false\n")
    proc = smk(
        "-n",
        "--cores",
        "2",
        "--configfile",
        "config.yaml",
        str(offline),
        "--config",
        f"dataset={{path: {sample_dir}}}",
        "results=/tmp/resstream-nothing",
        env=env,
        check=False,
    )
    assert proc.returncode != 0
    assert resstream_lines(proc) == [
        f"resstream: weights resnet18 IMAGENET1K_V1 are not in torch's hub cache ({cached}) and downloads are "
        f"disabled. Fix: copy resnet18-f37072fd.pth there (or point TORCH_HOME at a cache holding it), or set "
        f"model.weights to a local checkpoint path; for a test run use model.weights: random:0."
    ]


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
    """The documentation's job counts (paper study, resnet50 demo) are what a dry run plans today."""
    counts = {}
    for configfile in ("config.yaml", "demo-resnet50.yaml"):
        proc = smk(
            "-n",
            "--cores",
            "2",
            "--configfile",
            configfile,
            "--config",
            f"results={tmp_path / configfile}",
            f"dataset={{path: {sample_dir}}}",
        )
        counts[configfile] = job_counts(proc)
    paper, r50 = counts["config.yaml"], counts["demo-resnet50.yaml"]
    readme = " ".join(docs_text().split())  # one space between words
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    per_group = profile["group-components"]["fv"]
    assert profile["groups"] == {"fv_chunk": "fv", "fv_channel_chunk": "fv"}
    chunks = paper["fv_chunk"] + paper["fv_channel_chunk"]
    submitted = chunks + sum(
        paper[r]
        for r in ("exemplar_grids", "measure_fv", "measure_imagenet", "atlas_block", "activations", "model_card")
    )
    local = paper["total"] - submitted - paper["all"]
    assert (
        f"The full study is {paper['total']} jobs: {paper['fv_chunk']} FV chunks and {paper['fv_channel_chunk']} "
        f"channel-FV chunks (the atlas's and Figs 1 and 6's), i.e. {-(-chunks // per_group)} FV submissions of up "
        f"to four chunks, {paper['exemplar_grids']} exemplar-grid jobs, "
        f"{paper['measure_fv'] + paper['measure_imagenet']} measurements, {paper['atlas_block']} atlas blocks, the "
        f"dataset pass and the model card, and {local} local jobs (and the target `all`)"
    ) in readme
    assert per_group == 4  # "up to four"
    assert f"--config 'dataset={{path: /data/imagenet/val}}' # {paper['total']} jobs" in readme
    measurements = r50["measure_fv"] + r50["measure_imagenet"]
    assert (
        f"demo-resnet50.yaml` ({r50['total']} jobs: {r50['fv_chunk']} FV chunks, {r50['fv_channel_chunk']} atlas "
        f"channel-FV chunks, one 1,000-image activation pass, {measurements} measurements, "
        f"{r50['exemplar_grids']} exemplar-grid jobs (one per layer),"
    ) in readme


def test_command_line_values_are_typed_by_the_schema(tmp_path, sample_dir):
    """Snakemake hands nested --config values over as text ('2', '3'): both examples of the issue
    plan the demo's jobs (tests/workflow/test_config.py checks the typed values themselves)."""
    base = [
        "-n",
        "--cores",
        "2",
        "--configfile",
        "demo.yaml",
        "--config",
        f"dataset={{path: {sample_dir}}}",
        f"results={tmp_path}",
    ]
    for value in ("analysis={mix_factor: 2}", 'fv={overrides: {"2.1": {steps: 3}}}'):
        proc = smk(*base, value)
        assert "is not of type" not in proc.stderr
        assert job_counts(proc)["fv_chunk"] == 18 and job_counts(proc)["metric_table"] == 14, value


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
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "snakefmt"), "--check", "Snakefile", "rules/"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_default_config_without_dataset_says_what_to_set():
    proc = smk("-n", "--cores", "2", check=False)
    assert proc.returncode != 0
    line = one_line(proc)
    assert "dataset.path" in line and "make demo" in line


def test_bad_config_names_the_key(tmp_path, sample_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text("fv:\n  steps: -5\n")
    proc = smk("-n", "--configfile", "demo.yaml", str(bad), check=False)
    assert proc.returncode != 0
    assert (
        "resstream: invalid config: fv.steps: -5 is out of range; fv.steps takes an integer with 1 <= steps <= 100000"
        in proc.stderr
    )


def test_model_card_rule_runs_and_records_random_weights(tmp_path, sample_dir):
    smk(
        f"{tmp_path}/model_card.json",
        "--cores",
        "2",
        "--configfile",
        "demo.yaml",
        "--config",
        f"results={tmp_path}",
        f"dataset={{path: {sample_dir}}}",
    )
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

    from resstream.model.weights import load_model

    model, _ = load_model("resnet18", "random:4")
    ckpt = tmp_path / "finetuned.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 7}, ckpt)
    custom = tmp_path / "custom.yaml"
    custom.write_text(
        f"results: {tmp_path}\nmodel:\n  weights: {ckpt}\n  checkpoint: any\ndataset:\n  path: {sample_dir}\n"
    )
    smk(f"{tmp_path}/model_card.json", "--cores", "2", "--configfile", "demo.yaml", str(custom))
    weights = json.loads((tmp_path / "model_card.json").read_text())["weights"]
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert weights["kind"] == "custom" and weights["file_sha256"] == digest and weights["source"] == str(ckpt)
    label = f"resnet18 custom checkpoint finetuned.pth (file sha256 {digest[:12]}, not torchvision's weights)"
    assert weights["label"] == label and set(pd.read_csv(tmp_path / "model_card.csv")["weights"]) == {label}


def test_missing_weights_stop_before_any_job_with_one_line(tmp_path, sample_dir):
    # checked in snakemake's main process before any job starts (tests/workflow/test_bad_input.py: and
    # before snakemake removes outdated outputs)
    proc = smk(
        f"{tmp_path}/model_card.json",
        "--cores",
        "1",
        "--configfile",
        "demo.yaml",
        "--config",
        f"results={tmp_path}",
        f"model={{weights: {tmp_path}/resnet18-f37072fd.pth}}",
        f"dataset={{path: {sample_dir}}}",
        check=False,
    )
    assert proc.returncode != 0
    assert "resnet18-f37072fd.pth does not exist" in one_line(proc)
    assert not (tmp_path / "model_card.json").exists()


def test_jobs_take_what_their_rules_declare():
    """No job reads the config or rebuilds the study plan (scripts and every library module a job
    runs), and each rule's code param fingerprints the script the rule runs."""
    import re

    from resstream.base.code_fingerprint import fingerprinted_files

    scripts = sorted((REPO / "scripts").glob("*.py"))
    job_modules = {m for s in scripts for m in fingerprinted_files(str(s)) if m.endswith(".py")}
    assert {
        "fv/job.py",
        "activations/stream.py",
        "activations/exemplars.py",
        "analysis/measure.py",
        "analysis/figures.py",
        "atlas/write.py",
        "dictionary/stage.py",
        "dictionary/feature_fv.py",
        "atlas/dictionary_pages.py",
    } <= job_modules
    for path in scripts + [REPO / "resstream" / m for m in sorted(job_modules)]:
        text = path.read_text()
        assert "snakemake.config" not in text and "StudyPlan(" not in text, path
    rules_with_scripts = 0
    for smk_file in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^\s*rule\b", smk_file.read_text(), flags=re.M)[1:]:
            script = re.search(r'script:\s*"\.\./scripts/([\w.]+)"', block)
            if script:
                rules_with_scripts += 1
                code = re.search(r'code=code\("([\w.]+)"\)', block)
                assert code and code.group(1) == script.group(1), (smk_file.name, block[:80])
    assert rules_with_scripts == 18  # (the eight figure rules are one rule in a loop, as are the two measurements)


def test_a_code_fingerprint_follows_the_imports_and_the_data_files_named(tmp_path):
    """A small package: the entry's fingerprint covers what it imports at any depth (a function's
    import too) and the data file a module names; an edit elsewhere leaves it alone."""
    from resstream.base.code_fingerprint import code_fingerprint, fingerprinted_files

    pkg = tmp_path / "resstream"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "entry.py").write_text("from .helper import x\n\ndef run():\n    from .sub import deep\n")
    (pkg / "helper.py").write_text("from . import errors\nx = 1\n")
    (pkg / "errors.py").write_text("CLAIMS = 'claims.yaml'\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "deep.py").write_text("")
    (pkg / "unrelated.py").write_text("")
    (pkg / "claims.yaml").write_text("a: 1\n")
    (pkg / "other.yaml").write_text("b: 2\n")
    script = tmp_path / "job.py"
    script.write_text("import sys\nfrom resstream.entry import run\n")
    assert fingerprinted_files(str(script), str(pkg)) == [
        "__init__.py",
        "entry.py",
        "errors.py",
        "helper.py",
        "sub/__init__.py",
        "sub/deep.py",
        "claims.yaml",
    ]
    before = code_fingerprint(str(script), str(pkg))
    code_fingerprint.cache_clear()
    (pkg / "unrelated.py").write_text("# edited\n")
    (pkg / "other.yaml").write_text("b: 3\n")
    assert code_fingerprint(str(script), str(pkg)) == before
    code_fingerprint.cache_clear()
    (pkg / "sub" / "deep.py").write_text("# a comment only\n")
    assert code_fingerprint(str(script), str(pkg)) != before
