"""bench/gpu_check.py, the GPU readiness check, runs end to end on the CPU with tiny sizes (its dry
run), so it cannot rot on machines without a GPU; its numbers are checked for consistency here,
its speed only on a GPU (by running it)."""

import importlib.util
import json
import subprocess
import sys

import pytest
import torch

from helpers import REPO

STUDY_UNITS = {"layer1": 192, "layer2": 640, "layer3": 1280, "layer4": 2560}  # 3, 5, 5, 5 layers x channels


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "check.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--device", "cpu", "--tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text()), proc.stdout


def test_agreement_and_repeat_sections(dry_run):
    report, table = dry_run
    assert report["tiny"] is True and report["device"].startswith("CPU") and "RANDOM WEIGHTS" in report["weights"]
    agreement = report["agreement"]
    assert set(agreement["groups"]) == set(STUDY_UNITS) and agreement["pass"] is True
    for row in agreement["groups"].values():
        assert row["status_device"] == row["status_cpu"] and row["max_relative_difference"] <= agreement["tolerance"]
    assert report["repeat"]["layer2"]["bit_identical"] is True
    assert "Agreement with the CPU" in table and "PASS" in table and "wrote" in table


def test_throughput_and_the_study_projection(dry_run):
    report, table = dry_run
    t = report["throughput"]
    assert t["study_units"] == STUDY_UNITS and t["study_steps"] == 2560
    hours = lucent_hours = 0.0
    for group, row in t["groups"].items():
        assert row["unit_steps_per_s"] == pytest.approx(row["units"] * row["steps"] / row["seconds"])
        assert row["ratio"] == pytest.approx(row["unit_steps_per_s"] / row["lucent"]["unit_steps_per_s"])
        assert row["tflop_per_s"] == pytest.approx(row["gflop_per_unit_step"] * row["unit_steps_per_s"] / 1e3)
        hours += STUDY_UNITS[group] * 2560 / row["unit_steps_per_s"] / 3600
        lucent_hours += STUDY_UNITS[group] * 2560 / row["lucent"]["unit_steps_per_s"] / 3600
    assert t["projected_hours"] == pytest.approx(hours) and t["lucent_projected_hours"] == pytest.approx(lucent_hours)
    # the receptive-field crop shrinks layer1-2's inputs; layer3.1 and layer4 see the whole image
    px = {g: row["input_px"] for g, row in t["groups"].items()}
    assert px["layer1"] < px["layer2"] < 224 == px["layer3"] == px["layer4"]
    assert "FV throughput" in table and "lucent b1" in table


def test_speed_options_report_their_effect(dry_run):
    report, _ = dry_run
    rows = report["options"]["layer2"]["options"]
    assert list(rows) == [
        "default",
        "fv.tf32",
        "fv.bf16",
        "channels_last off",
        "rf_crop off",
        "torch's backward",
        "per-unit transforms",
    ]
    assert rows["default"]["speedup"] == 1 and rows["default"]["max_relative_difference"] == 0
    assert rows["fv.tf32"]["max_relative_difference"] == 0  # TF32 is a CUDA setting: no effect on the CPU
    assert rows["fv.bf16"]["median_relative_difference"] > 1e-3  # bf16 changes the results
    for row in rows.values():
        assert row["unit_steps_per_s"] > 0 and len(row["final"]) == 2


def test_dataset_pass_and_gpu_pinning(dry_run):
    report, table = dry_run
    d = report["dataset"]
    assert d["images"] == 16 and d["workers"] == 0
    assert d["projected_minutes_50000"] == pytest.approx(50000 / d["img_per_s"] / 60)
    g = report["gpus"]  # two pretended devices on the CPU: the lock slots, FVs on the CPU
    assert g["simulated"] is True and sorted(j["slot"] for j in g["jobs"]) == ["0", "1"]
    assert [j["visible"] for j in g["jobs"]] == [j["slot"] for j in g["jobs"]] and g["ran_together"] and g["pass"]
    assert "Several GPUs (simulated" in table and "Dataset pass" in table


def test_without_a_gpu_the_full_check_refuses_in_one_line(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "bench" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", "/nonexistent/x.json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "resstream: no CUDA device is usable here. Fix: run on a GPU machine, or use --device cpu --tiny for the dry run"
    ]


def test_lesions_batched_against_the_authors_way(dry_run):
    report, table = dry_run
    les = report["lesions"]
    assert les["block"] == "2.1" and les["images"] == 2 and les["conditions"] == 11 and les["workers"] == 0
    assert les["accuracies_equal"] is True  # the same lesions give the same accuracies both ways
    n = les["images"] * les["conditions"]
    assert les["img_per_s_per_condition"] == pytest.approx(n / les["seconds"])
    assert les["author_img_per_s_per_condition"] == pytest.approx(n / les["author_seconds"])
    assert les["speedup"] == pytest.approx(les["author_seconds"] / les["seconds"])
    assert les["projected_hours_full"] == pytest.approx(50000 * 66 / les["img_per_s_per_condition"] / 3600)
    assert "Lesions (block 2.1, 11 conditions" in table


def test_dictionary_training_rate_and_projection(dry_run):
    report, table = dry_run
    d = report["dictionary"]
    # each group's last block at the schema's defaults: 8 x (I + B) latents, k 32
    assert {g: (row["block"], row["latents"]) for g, row in d["groups"].items()} == {
        "layer1": ("1.1", 1024),
        "layer2": ("2.1", 2048),
        "layer3": ("3.1", 4096),
        "layer4": ("4.1", 8192),
    }
    assert all(row["tokens_per_s"] > 0 and row["batch_size"] == 64 for row in d["groups"].values())
    rate = {row["channels"]: row["tokens_per_s"] for row in d["groups"].values()}
    widths = {"1.1": 64, "2.0": 128, "2.1": 128, "3.0": 256, "3.1": 256, "4.0": 512, "4.1": 512}
    assert d["study_blocks"] == list(widths) and d["tokens_per_block"] == 800_000
    assert d["projected_hours"] == pytest.approx(sum(800_000 / rate[w] for w in widths.values()) / 3600)
    assert "Dictionary training" in table
