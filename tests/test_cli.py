"""The ``resstream`` command line: subcommands print what the library computes; bad arguments give
one line and exit status 2."""

import subprocess
import sys

import pytest

from helpers import REPO
from resstream.cli import main


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "resstream.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_info_lists_every_block_with_layers_channels_and_map_size(capsys):
    assert main(["info", "resnet18"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in out[2:]}
    assert list(rows) == ["1.0", "1.1", "2.0", "2.1", "3.0", "3.1", "4.0", "4.1"]
    assert rows["2.0"][2:6] == ["downsample", "layer2.0.downsample.1", "layer2.0.bn2", "layer2.0.prerelu_out"]
    assert rows["2.1"][3] == "layer2.0.prerelu_out"  # a simple block's I is the previous block's O
    assert rows["4.1"][-2:] == ["512", "7x7"] and rows["1.1"][-2:] == ["64", "56x56"]
    assert "studied by default: 1.1, 2.0, 2.1, 3.0, 3.1, 4.0, 4.1" in out[0]


def test_info_of_a_bottleneck_net_names_bn3():
    proc = run_cli("info", "resnet50")
    assert proc.returncode == 0, proc.stderr
    row = next(line.split() for line in proc.stdout.splitlines() if line.startswith("2.0 "))
    assert row[1] == "Bottleneck" and row[4] == "layer2.0.bn3" and row[-2] == "512"


def test_info_of_a_timm_model_and_families_list_the_timm_families(capsys):
    assert main(["info", "timm:seresnext26d_32x4d"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in out[2:]}
    assert rows["2.0"][1:6] == [
        "Bottleneck",
        "downsample",
        "layer2.0.downsample.1",
        "layer2.0.se",
        "layer2.0.prerelu_out",
    ]
    assert main(["families"]) == 0
    out = capsys.readouterr().out
    for family in (
        "timm ResNet",
        "timm ResNetV2",
        "timm ConvNeXt",
        "timm RegNet",
        "timm EfficientNet/MobileNet",
        "timm Res2Net",
        "timm ResNeSt",
        "timm CSPNet/DarkNet",
        "timm ByobNet",
    ):
        assert f"\n{family} (any model of timm.models." in out
    assert "recorded and tested: timm:resnet18, timm:resnet50" in out
    assert "recorded and tested: timm:gernet_s, timm:resnet51q" in out
    refused = out.split("timm residual models refused (their sum is no I + B of one stream):\n")[1].splitlines()
    assert [line.split(",")[0] for line in refused] == [
        "  models of timm.models.dla",
        "  models with RepVggBlocks",
        "  models with MobileOneBlocks",
        "  models with PreBottlenecks",
    ]


@pytest.mark.parametrize(
    "args, says",
    [
        (
            ["info", "timm:vgg16"],
            "model.arch 'timm:vgg16' is a timm model without residual blocks of a supported family "
            "(timm.models.vgg). Fix: choose a timm model of a supported family: timm ResNet",
        ),
        (["info", "vgg16"], "model.arch 'vgg16' is a torchvision model without residual blocks of a supported family"),
        (
            ["info", "resnet9000"],
            "model.arch 'resnet9000' is not a torchvision model resstream knows. Fix: choose an arch of a "
            "supported family: ResNet (resnet18 ... wide_resnet101_2, 7 archs); ResNeXt",
        ),
        (["info"], "the following arguments are required: arch"),
        (["bogus"], "invalid choice: 'bogus'"),
        ([], "name a command"),
    ],
)
def test_bad_arguments_give_one_line_and_status_2(args, says):
    proc = run_cli(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("resstream") and says in lines[0], proc.stderr


# -- fv and activations: the workflow's code, seeds and files ----------------------------------------


def cli(*args, cwd=REPO):
    """The console entry point in a subprocess, as a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "resstream.cli", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def same_threads():
    """The command's torch threads = this process's, where the job's twin runs: the sums of a
    convolution split over another number of threads differ in the last bits."""
    import torch

    return ["--threads", str(torch.get_num_threads())]


def test_fv_command_writes_what_the_fv_job_writes(tmp_path):
    import hashlib

    from helpers.job_calls import render_chunk
    from helpers.workflow import assert_same_h5
    from resstream.workflow.config import validate_config

    out = tmp_path / "cli"
    proc = cli(
        "fv",
        "--layer",
        "layer2.1.bn2",
        "--channels",
        "3,5",
        "--steps",
        "2",
        "--out",
        out,
        "--weights",
        "random:0",
        "--device",
        "cpu",
        *same_threads(),
    )
    assert proc.stdout.startswith(f"{out}: 2 FVs of layer2.1.bn2 (3:")
    assert "step 2/2" in proc.stderr  # progress, as the job logs it
    config = validate_config(
        {
            "model": {"weights": "random:0", "device": "cpu"},
            "dataset": {"path": None},
            "study": {"blocks": ["2.1"], "channels": [3, 5]},
            "fv": {"steps": 2},
        }
    )
    job = tmp_path / "job"
    render_chunk(config, "layer2.1.bn2", "c0000-0063", str(job))
    assert (
        sorted(p.name for p in out.iterdir())
        == sorted(p.name for p in job.iterdir())
        == ["fv.h5", "unit0003.png", "unit0005.png"]
    )
    for name in ("unit0003.png", "unit0005.png"):
        assert (out / name).read_bytes() == (job / name).read_bytes(), name
    assert_same_h5(out / "fv.h5", job / "fv.h5")
    import json

    import h5py

    with h5py.File(out / "fv.h5") as f:
        settings = json.loads(f.attrs["settings"])
        seeds = list(f["seed"][:])
    assert (settings["steps"], settings["jitter"], settings["lr"]) == (
        2,
        4,
        0.05,
    )  # layer2.1: jitter 4 (docs/method.md#feature-visualizations)
    # each unit's seed is its own: the first 4 bytes of sha256("seed:layer:channel")
    assert seeds == [
        int.from_bytes(hashlib.sha256(f"0:layer2.1.bn2:{c}".encode()).digest()[:4], "little") for c in (3, 5)
    ]


def test_fv_command_settings_reach_the_job_as_config_keys(tmp_path):
    from helpers.job_calls import render_chunk
    from helpers.workflow import assert_same_h5
    from resstream.workflow.config import validate_config

    out = tmp_path / "cli"
    cli(
        "fv",
        "--layer",
        "layer1.1.prerelu_out",
        "--channels",
        "7",
        "--steps",
        "3",
        "--lr",
        "0.1",
        "--seed",
        "4",
        "--jitter",
        "8",
        "--no-rf-crop",
        "--out",
        out,
        "--weights",
        "random:0",
        "--device",
        "cpu",
        *same_threads(),
    )
    config = validate_config(
        {
            "model": {"weights": "random:0", "device": "cpu"},
            "dataset": {"path": None},
            "study": {"blocks": ["1.1"], "channels": [7]},
            "fv": {
                "steps": 3,
                "lr": 0.1,
                "seed": 4,
                "rf_crop": False,
                "overrides": {"layer1.1.prerelu_out": {"jitter": 8}},
            },
        }
    )
    render_chunk(config, "layer1.1.prerelu_out", "c0000-0063", str(tmp_path / "job"))
    assert_same_h5(out / "fv.h5", tmp_path / "job" / "fv.h5")


def own_checkpoint(path):
    """resnet18 weights of one's own (random:0, every weight halved, wrapped as a training script
    saves them): not torchvision's file."""
    import torch

    from resstream.model.weights import load_model

    model, _ = load_model("resnet18", "random:0")
    torch.save(
        {
            "epoch": 3,
            "state_dict": {f"module.{k}": v / 2 if v.is_floating_point() else v for k, v in model.state_dict().items()},
        },
        path,
    )
    return path


def test_fv_command_takes_a_checkpoint_of_ones_own_as_the_workflow_does(tmp_path):
    """``--checkpoint any``: the same FVs and the same weights identity (kind custom, the file's
    sha256) as the workflow's job with model.checkpoint: any; without it, one line naming the option."""
    import hashlib
    import json

    import h5py

    from helpers.job_calls import render_chunk
    from helpers.workflow import assert_same_h5
    from resstream.workflow.config import validate_config

    weights = own_checkpoint(tmp_path / "own.pth")
    out = tmp_path / "cli"
    refused = run_cli(
        "fv",
        "--layer",
        "layer1.1.bn2",
        "--channels",
        "2",
        "--steps",
        "2",
        "--out",
        str(out),
        "--weights",
        str(weights),
        "--device",
        "cpu",
    )
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith(f"resstream: checkpoint {weights} (sha256 ")
    assert "(resstream fv / activations: --checkpoint any;" in refused.stderr and not out.exists()
    cli(
        "fv",
        "--layer",
        "layer1.1.bn2",
        "--channels",
        "2",
        "--steps",
        "2",
        "--out",
        out,
        "--weights",
        weights,
        "--checkpoint",
        "any",
        "--device",
        "cpu",
        *same_threads(),
    )
    config = validate_config(
        {
            "model": {"weights": str(weights), "checkpoint": "any", "device": "cpu"},
            "dataset": {"path": None},
            "study": {"blocks": ["1.1"], "channels": [2]},
            "fv": {"steps": 2},
        }
    )
    render_chunk(config, "layer1.1.bn2", "c0000-0063", str(tmp_path / "job"))
    assert_same_h5(out / "fv.h5", tmp_path / "job" / "fv.h5")
    assert (out / "unit0002.png").read_bytes() == (tmp_path / "job" / "unit0002.png").read_bytes()
    with h5py.File(out / "fv.h5") as f:
        identity = json.loads(f.attrs["weights"])
    assert (identity["kind"], identity["source"], identity["file_sha256"]) == (
        "custom",
        str(weights),
        hashlib.sha256(weights.read_bytes()).hexdigest(),
    )


def test_activations_command_writes_what_the_activations_rule_writes(tmp_path, sample_dir):
    import numpy as np
    import torch
    import torchvision
    from torchvision import transforms

    from helpers.job_calls import run_pass
    from helpers.workflow import assert_same_h5, link_images
    from resstream.activations.store import open_activations
    from resstream.workflow.config import validate_config

    data = link_images(sample_dir, tmp_path / "data", 5)
    out = tmp_path / "cli.h5"
    cli(
        "activations",
        "--data",
        data,
        "--out",
        out,
        "--blocks",
        "1.1",
        "--weights",
        "random:0",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--batch-size",
        "2",
    )
    config = validate_config(
        {
            "model": {"weights": "random:0", "device": "cpu"},
            "study": {"blocks": ["1.1"]},
            "dataset": {"path": str(data)},
            "activations": {"batch_size": 2, "workers": 0},
        }
    )
    run_pass(config, str(tmp_path / "rule.h5"))
    assert_same_h5(out, tmp_path / "rule.h5")

    # and one value by hand: layer1.1.bn2's centre neuron of the first image, from torchvision alone
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    seen = []
    model.layer1[1].bn2.register_forward_hook(
        lambda m, i, o: seen.append(o.detach().clone())
    )  # before the in-place add
    first = sorted(data.rglob("*.JPEG"))[0]
    prep = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    from PIL import Image

    with torch.no_grad():
        model(prep(Image.open(first).convert("RGB"))[None])
    with open_activations(str(out)) as f:
        assert f["images/path"].asstr()[0] == str(first.relative_to(data))
        np.testing.assert_allclose(f["layers/layer1.1.bn2"][0], seen[0][0, :, 28, 28].numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "args, says",
    [
        (
            ["fv", "--layer", "layer2.1.bn2", "--channels", "3-1", "--out", "x"],
            "argument --channels: '3-1' is not a channel list",
        ),
        (
            ["fv", "--layer", "layer2.1.bn2", "--channels", "0", "--out", "x", "--steps", "0"],
            "argument --steps: '0' is not a whole number >= 1",
        ),
        (
            ["fv", "--layer", "layer2.1.bn9", "--channels", "0", "--out", "x", "--weights", "random:0"],
            "block 2.1's branch ends in bn2, not bn9",
        ),
        (
            ["fv", "--layer", "layer2.1.bn2", "--channels", "120-130", "--out", "x", "--weights", "random:0"],
            "channels 128, 129, 130 are not channels of layer2.1.bn2, which has 0..127",
        ),
        (
            ["activations", "--data", "no-such-folder", "--out", "a.h5", "--weights", "random:0"],
            "dataset.path no-such-folder does not exist or is not a folder",
        ),
        (["fetch-sample", "--dest", "d", "--source", "no-such.zip"], "no-such.zip is neither a folder nor a zip file"),
        (
            ["fv", "--layer", "layer2.1.bn2", "--channels", "0", "--out", "x", "--lr", "nan"],
            "argument --lr: 'nan' is not a finite number > 0",
        ),
        (
            ["fv", "--layer", "layer2.1.bn2", "--channels", "0", "--out", "x", "--lr", "inf"],
            "argument --lr: 'inf' is not a finite number > 0",
        ),
        (["info", "resnet18", "--size", "0"], "argument --size: '0' is not a whole number >= 1"),
        (
            ["fv", "--layer", "layer2.1.bn2", "--channels", "0-999999999999", "--out", "x"],
            "argument --channels: '0-999999999999' is not a channel list of channels 0..65535",
        ),
        (
            ["fv", "--layer", "layer2.1.bn2", "--channels", "0", "--out", "x", "--threads", "999999"],
            "argument --threads: '999999' is more threads than the ",
        ),
        (
            ["info", "convnext_tiny", "--size", "20"],
            "--size 20 is too small for convnext_tiny (Calculated padded input size",
        ),
    ],
)
def test_bad_command_arguments_give_one_line_and_status_2(tmp_path, args, says):
    proc = subprocess.run(
        [sys.executable, "-m", "resstream.cli", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("resstream") and says in lines[0], proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_existing_outputs_are_never_overwritten(tmp_path, capsys):
    (tmp_path / "fv").mkdir()
    (tmp_path / "fv" / "unit0000.png").write_bytes(b"earlier work")
    (tmp_path / "a.h5").write_bytes(b"earlier work")
    assert (
        main(
            ["fv", "--layer", "layer2.1.bn2", "--channels", "0", "--out", str(tmp_path / "fv"), "--weights", "random:0"]
        )
        == 2
    )
    assert main(["activations", "--data", str(tmp_path), "--out", str(tmp_path / "a.h5"), "--weights", "random:0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"resstream: {tmp_path / 'fv'} already holds files; nothing was computed. Fix: delete it or choose another output",
        f"resstream: {tmp_path / 'a.h5'} already holds an activations file; nothing was computed. Fix: delete it or choose another output",
    ]
    assert (tmp_path / "fv" / "unit0000.png").read_bytes() == (tmp_path / "a.h5").read_bytes() == b"earlier work"


def test_a_file_in_the_way_of_an_output_is_one_line_before_any_work(tmp_path, capsys):
    in_the_way = tmp_path / "notes.txt"
    in_the_way.write_text("mine")
    (tmp_path / "images").mkdir()
    commands = {
        "fv": ["fv", "--layer", "layer2.1.bn2", "--channels", "0", "--weights", "random:0", "--out"],
        "activations": ["activations", "--data", str(tmp_path / "images"), "--weights", "random:0", "--out"],
        "fetch-sample": ["fetch-sample", "--source", str(tmp_path / "images"), "--dest"],
    }
    for name, args in commands.items():
        out = in_the_way / "out"
        assert main([*args, str(out)]) == 2, name
        option = args[-1]
        assert capsys.readouterr().err == (
            f"resstream: {option} {out}: {in_the_way} is a file, not a folder; nothing was "
            f"computed. Fix: choose {option} in a folder\n"
        ), name
    assert in_the_way.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["images", "notes.txt"]


def test_output_cut_off_by_its_reader_ends_quietly():
    """``resstream info convnext_tiny | head -8``: the reader is gone before the table is written;
    the command stops without a traceback, with the status coreutils give (128 + SIGPIPE)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "resstream.cli", "info", "convnext_tiny"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # the reader has gone
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert err == ""


@pytest.mark.parametrize(
    "raised, status, line",
    [
        (KeyboardInterrupt(), 130, "resstream: interrupted; no output was published"),
        (
            PermissionError(13, "Permission denied", "/data/out/fv.h5"),
            1,
            "resstream: /data/out/fv.h5: Permission denied. Fix: check that path: a folder above it may be missing, not writable or full",
        ),
    ],
)
def test_ctrl_c_and_a_refused_file_are_one_line(monkeypatch, capsys, raised, status, line):
    from resstream import cli as cli_module

    def fails(args):
        raise raised

    help_text, arguments, _run = cli_module.COMMANDS["families"]
    monkeypatch.setitem(cli_module.COMMANDS, "families", (help_text, arguments, fails))
    assert main(["families"]) == status
    assert capsys.readouterr().err == line + "\n"


def test_jitter_applies_to_a_layer_of_any_block(tmp_path):
    """--jitter on a layer of block 1.0 (not studied by default) is that layer's jitter, not a
    refusal naming fv.overrides, a setting the command does not have."""
    import json

    import h5py

    out = tmp_path / "fv"
    assert (
        main(
            [
                "fv",
                "--layer",
                "layer1.0.bn2",
                "--channels",
                "1",
                "--steps",
                "1",
                "--jitter",
                "3",
                "--out",
                str(out),
                "--weights",
                "random:0",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    with h5py.File(out / "fv.h5") as f:
        assert json.loads(f.attrs["settings"])["jitter"] == 3


def test_weights_with_a_nan_are_one_line_naming_the_tensor(tmp_path, capsys):
    import torch

    from resstream.model.weights import load_model

    model, _ = load_model("resnet18", "random:0")
    state = model.state_dict()
    state["layer1.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    weights = tmp_path / "diverged.pth"
    torch.save(state, weights)
    (tmp_path / "images").mkdir()
    for args in (
        ["fv", "--layer", "layer2.1.bn2", "--channels", "0", "--out", str(tmp_path / "fv")],
        ["activations", "--data", str(tmp_path / "images"), "--out", str(tmp_path / "a.h5")],
    ):
        assert main([*args, "--weights", str(weights), "--checkpoint", "any", "--device", "cpu"]) == 2
        assert capsys.readouterr().err == (
            f"resstream: model.weights checkpoint {weights} holds non-finite weights: layer1.0.conv1.weight has 1 NaN "
            f"or Inf value(s) of 36864 (the first such tensor). Fix: use a checkpoint saved before training diverged; "
            f"every FV and activation of this network would be NaN.\n"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diverged.pth", "images"]
