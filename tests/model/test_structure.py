"""The recorded architecture tables (resstream/model/arch_tables.json) are what the networks say:
every supported arch's block table, map sizes and torchvision weights sets, recorded and live, are
equal; under another torchvision the live ones are used; and planning a study needs no torch (nor
scipy)."""

import subprocess
import sys

import pytest

from helpers import REPO
from resstream.model import recorded_tables, structure
from resstream.model.families import ARCHS


@pytest.mark.parametrize("arch", ARCHS)
def test_the_recorded_table_of_every_arch_is_the_live_one(arch):
    assert structure._recorded(), "arch_tables.json was recorded under another torchvision: make arch-tables"
    assert structure.structure(arch) == structure.live_structure(arch)
    assert structure.map_sizes(arch) == structure.live_map_sizes(arch)
    assert structure.weights_files(arch) == structure.live_weights_files(arch)


def test_the_recorded_model_names_are_torchvisions():
    assert structure.torchvision_models() == structure.live_torchvision_models()
    assert {"vgg16", "alexnet", "resnet18"} <= set(structure.torchvision_models())


def test_another_torchvision_or_input_size_is_computed_live(monkeypatch):
    recorded = (structure.structure("convnext_tiny"), structure.map_sizes("convnext_tiny"))
    assert structure.map_sizes("resnet18", 160)["4.1"] == (5, 5)  # not recorded: 160 / 32
    for cached in (structure._recorded_file, structure.structure, structure.map_sizes):
        monkeypatch.setattr(structure, cached.__name__, cached.__wrapped__)
    release = structure.torchvision_release()
    monkeypatch.setattr(
        recorded_tables, "version", lambda package: f"{release}+cu128"
    )  # a CUDA build: the same networks
    assert "resnet18" in structure._recorded()
    monkeypatch.setattr(recorded_tables, "version", lambda package: "0.0.0")
    assert structure._recorded() == {} and "vgg16" in structure.torchvision_models()
    calls = []
    monkeypatch.setattr(
        structure, "build_on_meta", lambda arch, build=structure.build_on_meta: calls.append(arch) or build(arch)
    )
    assert (structure.structure("convnext_tiny"), structure.map_sizes("convnext_tiny")) == recorded
    assert structure.weights_files("resnet18") == {
        "IMAGENET1K_V1": "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    }
    assert calls == ["convnext_tiny", "convnext_tiny"]


# Snakemake's own entry point with torch (2.4 s to import) and scipy (0.6 s) made unimportable: the
# demo's dry run (config checks, the plan of every job, the dataset listing) must need neither.
WITHOUT_TORCH_OR_SCIPY = """
import runpy, sys
class NoTorch:
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "lucent", "scipy", "timm"):
            raise ImportError(f"{name} imported while planning")
sys.meta_path.insert(0, NoTorch())
sys.argv = ["snakemake", *sys.argv[1:]]
runpy.run_module("snakemake", run_name="__main__")
"""


@pytest.mark.parametrize("demo", ["demo.yaml", "demo-convnext.yaml", "demo-timm.yaml"])
def test_a_dry_run_plans_every_job_without_importing_torch_or_scipy(demo, sample_dir, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            WITHOUT_TORCH_OR_SCIPY,
            "-n",
            "--cores",
            "2",
            "--configfile",
            demo,
            "--config",
            f"dataset={{path: {sample_dir}}}",
            f"results={tmp_path / 'results'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fv_chunk" in proc.stdout and "activations" in proc.stdout and "model_card" in proc.stdout
    assert not (tmp_path / "results").exists()
