"""Channel ids, not positions: selections that are not 0..n-1 (``study.channels: [5, 9]`` and
``channels_by_block`` with a different list per block) through the real dataset pass, the FV and
ImageNet (A.3) measurements, the exemplar grids and the tables that join channels.  Every number
is compared with a forward made here, outside the measurement code (tests/helpers/manual_forward.py)."""

import os

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.configs import tiny_config
from helpers.job_calls import draw_grids, fv_dirs_of_block, run_pass
from helpers.manual_forward import (
    manual_fv_input,
    manual_image,
    manual_maps,
    manual_role,
    manual_scale_down,
    manual_scale_up,
    manual_topk,
)
from helpers.synthetic import write_study_fvs
from helpers.workflow import link_images
from resstream.analysis import measure, measure_dataset, metrics
from resstream.atlas import load as atlas
from resstream.base.paths import activations_h5
from resstream.workflow.config import validate_config
from resstream.workflow.plan import StudyPlan

BLOCKS = ("1.1", "2.0", "2.1")
CHANNELS = [5, 9]  # study.channels: block 1.1
BY_BLOCK = {"2.0": [3, 17, 100], "2.1": [9, 64, 127]}  # channels_by_block: the other two
N_IMAGES = 16
QUANTITIES = (
    "out_in",
    "out_mid",
    "in_in",
    "mid_mid",
    "in_mid",
    "I_of_xB",
    "B_of_SxI",
    "I_of_SinvxB",
    "relu_B_of_xI",
    "relu_B_of_SxI",
    "relu_I_of_xB",
    "relu_I_of_SinvxB",
)


def selected(block):
    return BY_BLOCK.get(block, CHANNELS)


@pytest.fixture(scope="module")
def run(tmp_path_factory, random_model, sample_dir):
    """The real dataset pass over 16 images, fabricated FV PNGs, and every image's block tensors
    computed by hand."""
    model, identity = random_model
    tmp = tmp_path_factory.mktemp("mapping")
    data = link_images(sample_dir, tmp / "data", n=N_IMAGES)
    config = validate_config(
        tiny_config(
            tmp / "results",
            data,
            fv={"channels_per_job": 64},
            activations={"batch_size": 8},
            study={"blocks": list(BLOCKS), "channels": CHANNELS, "channels_by_block": BY_BLOCK},
        )
    )
    study = StudyPlan(config)
    assert [study.block_channels(b) for b in BLOCKS] == [CHANNELS, BY_BLOCK["2.0"], BY_BLOCK["2.1"]]
    run_pass(config, activations_h5(config["results"]))
    write_study_fvs(config, identity.as_dict())
    import h5py

    with h5py.File(activations_h5(config["results"]), "r") as f:
        paths = list(f["images/path"].asstr()[:])
    images = torch.stack([manual_image(os.path.join(data, p)) for p in paths])
    return config, study, model, identity, images, manual_maps(model, images)


def own_images(maps, block, role, channel):
    """The channel's top-9 images of its I or B layer, from the hand-made forward."""
    return manual_topk(manual_role(maps, block, role)[:, channel].double().numpy())


@pytest.mark.parametrize("block", BLOCKS)
def test_imagenet_numbers_equal_a_manual_forward_of_each_channels_own_top9(run, block):
    config, study, model, identity, images, maps = run
    df, meta = measure_dataset.measure_imagenet_block(
        model,
        identity,
        study.blocks,
        block,
        study.block_channels(block),
        study.o_relu,
        activations_h5(config["results"]),
        batch_size=5,
    )
    assert list(df["channel"]) == selected(block)
    assert meta["max_abs_diff_vs_activations_h5"] < 1e-4
    for c in selected(block):
        row = df[df["channel"] == c].iloc[0]
        v_i, v_b = own_images(maps, block, "I", c), own_images(maps, block, "B", c)
        assert row["top9_I"] == " ".join(map(str, v_i)) and row["top9_B"] == " ".join(map(str, v_b))
        plain_i, plain_b = manual_maps(model, images[v_i]), manual_maps(model, images[v_b])
        up_i, down_b = (
            manual_maps(model, manual_scale_up(images[v_i])),
            manual_maps(model, manual_scale_down(images[v_b])),
        )
        per_image = {
            "out_in": manual_role(plain_i, block, "O"),
            "out_mid": manual_role(plain_b, block, "O"),
            "in_in": manual_role(plain_i, block, "I"),
            "mid_mid": manual_role(plain_b, block, "B"),
            "in_mid": manual_role(plain_i, block, "B"),
            "I_of_xB": manual_role(plain_b, block, "I"),
            "B_of_SxI": manual_role(up_i, block, "B"),
            "I_of_SinvxB": manual_role(down_b, block, "I"),
        }
        expected = {k: v[:, c].double().numpy().mean() for k, v in per_image.items()}
        for name, raw in (
            ("relu_B_of_xI", "in_mid"),
            ("relu_B_of_SxI", "B_of_SxI"),
            ("relu_I_of_xB", "I_of_xB"),
            ("relu_I_of_SinvxB", "I_of_SinvxB"),
        ):
            expected[name] = np.maximum(per_image[raw][:, c].double().numpy(), 0).mean()
        for name in QUANTITIES:
            assert row[name] == pytest.approx(expected[name], abs=1e-4), (block, c, name)
        # O and I read both ways over the same images (study.o_relu is pre here)
        for variant in ("pre", "post"):
            for name, tensors, role in (("out_in", plain_i, "O"), ("out_mid", plain_b, "O"), ("in_in", plain_i, "I")):
                value = manual_role(tensors, block, role, variant)[:, c].double().numpy().mean()
                assert row[f"{name}_{variant}"] == pytest.approx(value, abs=1e-4), (block, c, name, variant)
        assert row["out_in_pre"] == row["out_in"] and row["in_in_pre"] == row["in_in"]


@pytest.mark.parametrize("block", BLOCKS)
def test_fv_numbers_equal_a_manual_forward_of_each_channels_own_fvs(run, block):
    _, study, model, identity, _, _ = run
    df, meta = measure.measure_fv_block(
        model,
        identity,
        study.blocks,
        block,
        study.block_channels(block),
        study.o_relu,
        fv_dirs_of_block(study, block),
        batch_size=2,
    )
    assert list(df["channel"]) == selected(block)
    for c in selected(block):
        x_i, x_b = (manual_fv_input(study, meta["layers"][role], c) for role in ("I", "B"))
        m_i, m_b = manual_maps(model, x_i), manual_maps(model, x_b)
        row = df[df["channel"] == c].iloc[0]
        assert row["out_in"] == pytest.approx(float(manual_role(m_i, block, "O")[0, c]), abs=1e-4)
        assert row["mid_mid"] == pytest.approx(float(manual_role(m_b, block, "B")[0, c]), abs=1e-4)
        assert row["in_in"] == pytest.approx(float(manual_role(m_i, block, "I")[0, c]), abs=1e-4)
        assert row["B_of_SxI"] == pytest.approx(
            float(manual_role(manual_maps(model, manual_scale_up(x_i)), block, "B")[0, c]), abs=1e-4
        )


def test_exemplar_grids_list_each_channels_own_top9(run):
    config, study, _, _, _, maps = run
    draw_grids(config, activations_h5(config["results"]))
    exemplars = os.path.join(config["results"], "activations", "exemplars")
    listed = pd.concat(pd.read_csv(os.path.join(exemplars, layer, "exemplars.csv")) for layer in os.listdir(exemplars))
    for block in BLOCKS:
        layers = study.block_layers(block)
        for role in ("I", "B"):
            for c in selected(block):
                rows = listed[(listed["layer"] == layers[role]) & (listed["channel"] == c)].sort_values("rank")
                assert list(rows["image_index"]) == own_images(maps, block, role, c), (block, role, c)


def test_tables_joined_by_channel_id_not_row_order():
    """The atlas and Fig 7 join the FV and ImageNet tables of a block; rows in another order (or
    another selection) must still meet by channel id."""
    fv = pd.DataFrame(
        {"channel": [9, 64, 127], "M": [1.0, 2.0, 3.0], "pass_all": [True, True, False], "SM": [0.5, 0.9, 0.1]}
    )
    imagenet = pd.DataFrame({"channel": [127, 9, 64], "M": [30.0, 10.0, 20.0], "pass_all": [True, False, True]})
    units = {u["channel"]: u for u in atlas.block_units(fv, imagenet)}
    assert [units[c]["imagenet_M"] for c in (9, 64, 127)] == [10.0, 20.0, 30.0]
    # FV passes 9, 64; ImageNet passes 127, 64 -> both: 64 only
    assert metrics.both_criteria(
        fv["channel"], fv["pass_all"], fv["SM"], imagenet["channel"], imagenet["pass_all"]
    ) == [64]
