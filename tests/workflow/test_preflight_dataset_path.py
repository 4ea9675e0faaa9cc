"""The pre-flight's one line for a ``dataset.path`` that is no folder: fetching is suggested only
for the demo's own sample folder, never for a typo or a file."""

import os

import pytest

from resstream.workflow.config import validate_config
from resstream.workflow.plan import StudyPlan
from resstream.workflow.smk import check_inputs_or_exit


def preflight_line(capsys, path, demo: bool) -> str:
    config = {"model": {"weights": "random:0"}, "dataset": {"path": str(path)}}
    if demo:
        config["demo"] = True
    with pytest.raises(SystemExit) as stop:
        check_inputs_or_exit(StudyPlan(validate_config(config)), dry_run=True)
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    return err


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_demos_own_folder_not_fetched_yet_suggests_fetching(in_tmp, capsys):
    assert preflight_line(capsys, "data/imagenet-sample", demo=True) == (
        "resstream: dataset.path data/imagenet-sample does not exist: the demo's sample is not fetched yet. Fix: make "
        "demo (or resstream fetch-sample --dest data/imagenet-sample) fetches it; set RESSTREAM_SAMPLE to a local "
        "copy when offline.\n"
    )


def test_a_mistyped_path_under_a_demo_config_does_not_exist(in_tmp, capsys):
    assert preflight_line(capsys, "data/imagenet-smaple", demo=True) == (
        "resstream: dataset.path data/imagenet-smaple does not exist. Fix: set dataset.path to an ImageNet-style "
        "validation folder (class sub-folders) or a flat folder of images (the demo's sample is data/imagenet-sample, "
        "from resstream fetch-sample).\n"
    )


@pytest.mark.parametrize("demo", [True, False])
def test_a_file_is_never_a_place_to_fetch_into(in_tmp, capsys, demo):
    assert os.path.isfile("/etc/passwd")
    line = preflight_line(capsys, "/etc/passwd", demo=demo)
    assert line.startswith(
        "resstream: dataset.path /etc/passwd is a file, not a folder of images. Fix: set "
        "dataset.path to an ImageNet-style validation folder"
    )
    assert "--dest /etc/passwd" not in line
