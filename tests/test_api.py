"""resstream.api, the library's entry points outside Snakemake: one unit's metrics from its FV
images equal the workflow's FV metric table for that unit."""

import math

import pytest

from helpers.configs import tiny_config
from helpers.job_calls import fv_dirs_of_block, render_chunk
from resstream.analysis.measure import measure_fv_block
from resstream.analysis.metrics import metric_table
from resstream.analysis.summary import AnalysisError
from resstream.api import block_layers, unit_metrics
from resstream.base.paths import fv_chunk_dir, fv_png
from resstream.workflow.config import validate_config
from resstream.workflow.plan import StudyPlan

CHANNELS = [0, 1, 2]
KEYS = (
    "out_in",
    "out_mid",
    "in_in",
    "mid_mid",
    "in_mid",
    "I_of_xB",
    "B_of_SxI",
    "I_of_SinvxB",
    "M_raw",
    "M",
    "mix_status",
    "mix_group",
    "fig4_group",
    "m",
    "n",
    "scale_status",
    "SM",
    "pass_all",
    "pass_nomix",
    "status",
)


@pytest.fixture(scope="module")
def study_fvs(tmp_path_factory):
    """The FV stage's folders of block 2.1 (I, B and O layers), 2 steps, random weights."""
    results = tmp_path_factory.mktemp("api") / "results"
    config = validate_config(
        tiny_config(results, dataset={"path": None}, study={"blocks": ["2.1"], "channels": CHANNELS})
    )
    study = StudyPlan(config)
    for layer in study.layers:
        for chunk in study.chunks(layer):
            render_chunk(config, layer, chunk.name, fv_chunk_dir(str(results), layer, chunk.name))
    return study, str(results)


def test_block_layers_name_i_b_and_o():
    assert block_layers("resnet18", "2.1") == {
        "I": "layer2.0.prerelu_out",
        "B": "layer2.1.bn2",
        "O": "layer2.1.prerelu_out",
    }
    assert block_layers("resnet50", "2.0", o_relu="post") == {
        "I": "layer2.0.downsample.1",
        "B": "layer2.0.bn3",
        "O": "layer2.0",
    }


def test_unit_metrics_equal_the_workflows_metric_table(study_fvs, random_model):
    study, results = study_fvs
    model, identity = random_model
    raw, _meta = measure_fv_block(
        model,
        identity,
        study.blocks,
        "2.1",
        CHANNELS,
        study.o_relu,
        fv_dirs_of_block(study, "2.1"),
        study.config["analysis"]["batch_size"],
    )
    table = metric_table(raw).set_index("channel")
    layers = block_layers("resnet18", "2.1")
    for c in CHANNELS:
        images = {role: fv_png(results, layer, "c0000-0063", c) for role, layer in layers.items()}
        row = unit_metrics("2.1", c, images, weights="random:0", device="cpu")
        for key in KEYS:
            want, got = table.loc[c, key], row[key]
            if isinstance(want, float) and math.isnan(want):
                assert math.isnan(got), (c, key)
            else:
                assert got == want, (c, key, got, want)


def test_unit_metrics_refuse_fvs_of_other_weights(study_fvs):
    _study, results = study_fvs
    images = {role: fv_png(results, layer, "c0000-0063", 0) for role, layer in block_layers("resnet18", "2.1").items()}
    with pytest.raises(AnalysisError, match=r"fv\.h5 was made with weights 'resnet18 RANDOM WEIGHTS \(random:0"):
        unit_metrics("2.1", 0, images, weights="random:1", device="cpu")


def test_every_entry_that_loads_weights_takes_a_checkpoint_of_ones_own(tmp_path, sample_dir, study_fvs):
    """``checkpoint="any"``, as model.checkpoint: any: extract_activations writes what the
    activations job writes for that config (the file's sha256 recorded alike), and unit_metrics
    refuses FVs of other weights, as it does for any other network."""
    import hashlib
    import json

    import h5py
    import torch

    from helpers.job_calls import run_pass
    from helpers.workflow import assert_same_h5, link_images
    from resstream.api import extract_activations
    from resstream.model.weights import load_model

    model, _ = load_model("resnet18", "random:0")
    weights = tmp_path / "own.pth"
    torch.save({k: v * 0.5 if v.is_floating_point() else v for k, v in model.state_dict().items()}, weights)
    data = link_images(sample_dir, tmp_path / "data", 3)
    out = extract_activations(
        str(data),
        str(tmp_path / "api.h5"),
        weights=str(weights),
        checkpoint="any",
        device="cpu",
        blocks=["1.1"],
        workers=0,
        batch_size=2,
    )
    config = validate_config(
        {
            "model": {"weights": str(weights), "checkpoint": "any", "device": "cpu"},
            "study": {"blocks": ["1.1"]},
            "dataset": {"path": str(data)},
            "activations": {"batch_size": 2, "workers": 0},
        }
    )
    run_pass(config, str(tmp_path / "job.h5"))
    assert_same_h5(out, tmp_path / "job.h5")
    with h5py.File(out) as f:
        identity = json.loads(f.attrs["weights"])
    assert (identity["kind"], identity["file_sha256"]) == ("custom", hashlib.sha256(weights.read_bytes()).hexdigest())

    study, results = study_fvs
    images = {role: fv_png(results, layer, "c0000-0063", 0) for role, layer in block_layers("resnet18", "2.1").items()}
    with pytest.raises(AnalysisError, match="custom checkpoint own.pth"):
        unit_metrics("2.1", 0, images, weights=str(weights), checkpoint="any", device="cpu")
