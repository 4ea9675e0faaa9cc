"""The ``resstream`` command line: subcommands print what the library computes; bad arguments give
one line and exit status 2."""

import subprocess
import sys

import pytest

from conftest import REPO
from resstream.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "resstream.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


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


@pytest.mark.parametrize("args, says", [
    (["info", "vgg16"], "unknown architecture 'vgg16'; supported: resnet18"),
    (["info"], "the following arguments are required: arch"),
    (["bogus"], "invalid choice: 'bogus'"),
    ([], "name a command"),
])
def test_bad_arguments_give_one_line_and_status_2(args, says):
    proc = run_cli(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("resstream") and says in lines[0], proc.stderr
