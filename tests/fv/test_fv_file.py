"""fv.h5 through its one module (resstream/fv/fv_file.py): what is written is read back with its
types; the settings travel as FVSettings from the rule's param to the file and back; a file whose
weights attribute is not JSON is refused with one line naming it."""

import json

import h5py
import numpy as np
import pytest

from resstream.base.errors import UserError
from resstream.fv.fv_file import FV_FILE_DATASETS, fv_file_path, read_fv_file, write_fv_file
from resstream.fv.render import FVResult
from resstream.fv.settings import FVSettings

SETTINGS = FVSettings(
    steps=3,
    lr=0.05,
    jitter=4,
    hook="clone",
    seed=0,
    rf_crop=True,
    bf16=False,
    microbatch=None,
    channels_last=False,
    tf32=False,
)
WEIGHTS = {"arch": "resnet18", "source": "random:0", "kind": "random", "state_dict_sha256": "ab" * 32}


def written_chunk(tmp_path, settings: dict) -> str:
    result = FVResult(
        layer="layer2.1",
        channels=[3, 7],
        objective="center",
        seeds=[11, 12],
        images=np.zeros((2, 3, 224, 224), np.float32),
        final_activation=np.array([1.5, 0.0]),
        curve=np.zeros((2, 3)),
        status=["ok", "dead"],
        settings=settings,
        seconds=2.5,
        preprocessing={"mean": [0.5], "std": [0.25]},
    )
    write_fv_file(fv_file_path(str(tmp_path)), result, WEIGHTS, "2.1:out")
    return str(tmp_path)


def test_what_is_written_is_read_back_typed(tmp_path):
    # the job records the settings and how it ran (device, batching) beside them
    recorded = {**SETTINGS.as_params(), "objective": "center", "device": "cpu", "batched_transforms": False}
    record = read_fv_file(written_chunk(tmp_path, recorded))
    assert record.path == str(tmp_path / "fv.h5") and record.layer == "layer2.1"
    assert record.channels == (3, 7) and record.status == ("ok", "dead")
    assert record.status_by_channel() == {3: "ok", 7: "dead"}
    assert record.weights == WEIGHTS and record.settings == recorded
    assert record.fv_settings() == SETTINGS  # the FVSettings the job was given, out of what it recorded
    with h5py.File(record.path) as f:
        assert set(FV_FILE_DATASETS) <= set(f) and f.attrs["tap"] == "2.1:out"
        assert json.loads(f.attrs["preprocessing"]) == {"mean": [0.5], "std": [0.25]}


def test_settings_travel_as_fv_settings_through_the_rule_param():
    param = SETTINGS.as_params()
    assert json.loads(json.dumps(param)) == param  # a rule's param is JSON
    assert FVSettings.from_params(param) == SETTINGS and FVSettings.from_params(SETTINGS) is SETTINGS
    with pytest.raises(TypeError, match="stpes"):  # a misspelt setting is no setting
        FVSettings.from_params({**param, "stpes": 3})


def test_a_file_without_settings_records_none(tmp_path):
    chunk = written_chunk(tmp_path, {})
    with h5py.File(fv_file_path(chunk), "a") as f:
        del f.attrs["settings"]
    record = read_fv_file(chunk)
    assert record.settings is None and record.fv_settings() is None


def test_weights_that_are_not_json_are_refused_naming_the_file(tmp_path):
    chunk = written_chunk(tmp_path, SETTINGS.as_params())
    with h5py.File(fv_file_path(chunk), "a") as f:
        f.attrs["weights"] = "{not json"
    with pytest.raises(UserError) as err:
        read_fv_file(chunk)
    assert (
        str(err.value) == f"{fv_file_path(chunk)}: attribute 'weights' is not JSON. Fix: rerun the stage that wrote it."
    )
