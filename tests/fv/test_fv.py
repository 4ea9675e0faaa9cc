"""The FV engine: per-unit determinism, exact batching, objectives rising, dead/NaN recording."""

import copy
import json
import os

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from helpers.job_calls import render_chunk
from resstream.fv.render import FVError, render_units, unit_seed
from resstream.model.blocks import TapRef
from resstream.model.taps import block_taps
from resstream.model.walk import model_blocks
from resstream.workflow.config import validate_config
from resstream.workflow.plan import schema_fv_settings


def test_unit_seed_depends_only_on_the_unit():
    assert unit_seed(0, "layer1.1.bn2", 5) == unit_seed(0, "layer1.1.bn2", 5)
    assert len({unit_seed(0, "layer1.1.bn2", c) for c in range(64)}) == 64
    assert unit_seed(0, "layer1.1.bn2", 5) != unit_seed(1, "layer1.1.bn2", 5) != unit_seed(0, "layer1.1.prerelu_out", 5)


def test_a_unit_is_bit_identical_alone_and_in_chunks_of_8_and_64(net):
    model, blocks = net
    ref = TapRef("1.1", "B")
    kw = schema_fv_settings(steps=2, jitter=0)  # jitter 0: random sizes 224-236, several size groups per step
    alone = render_units(model, blocks, "layer1.1.bn2", ref, [5], **kw)
    in8 = render_units(model, blocks, "layer1.1.bn2", ref, list(range(8)), **kw)
    in64 = render_units(model, blocks, "layer1.1.bn2", ref, list(range(64)), **kw)
    assert np.array_equal(alone.images[0], in8.images[5]) and np.array_equal(alone.images[0], in64.images[5])
    assert np.array_equal(alone.curve[0], in8.curve[5]) and np.array_equal(alone.curve[0], in64.curve[5])
    # and the units really differ from one another
    assert not np.array_equal(in8.images[4], in8.images[5])


def test_deep_layer_unit_is_bit_identical_alone_and_in_chunk(net):
    model, blocks = net
    ref = TapRef("4.0", "D")
    alone = render_units(model, blocks, "layer4.0.downsample.1", ref, [300], **schema_fv_settings(steps=1, jitter=16))
    in8 = render_units(
        model,
        blocks,
        "layer4.0.downsample.1",
        ref,
        [1, 7, 300, 3, 9, 11, 13, 500],
        **schema_fv_settings(steps=1, jitter=16),
    )
    assert np.array_equal(alone.images[0], in8.images[2])


def test_batched_forward_equals_single_exactly(net):
    """Within one step, a unit's objective and gradient equal those of its single-unit run."""
    model, blocks = net
    ref = TapRef("3.1", "B")
    x = torch.randn(4, 3, 224, 224, requires_grad=True)
    out = block_taps(model, x, [ref])[ref][:, [0, 1, 2, 3], 7, 7].diagonal()
    (-out.sum()).backward()
    for i in range(4):
        xi = x.detach()[i : i + 1].clone().requires_grad_(True)
        oi = block_taps(model, xi, [ref])[ref][0, i, 7, 7]
        (-oi).backward()
        assert torch.equal(oi.detach(), out[i].detach())
        assert torch.equal(xi.grad[0], x.grad[i])


@pytest.mark.parametrize(
    "layer,ref",
    [
        ("layer2.0.downsample.1", TapRef("2.0", "D")),
        ("layer2.0.bn2", TapRef("2.0", "B")),
        ("layer2.0.prerelu_out", TapRef("2.0", "O_pre")),
    ],
)
def test_twenty_steps_raise_the_centre_activation(net, layer, ref):
    model, blocks = net
    res = render_units(model, blocks, layer, ref, [0, 1], **schema_fv_settings(steps=20, jitter=0))
    assert (res.curve[:, -1] > res.curve[:, 0]).all(), res.curve[:, [0, -1]]
    assert res.status == ["ok", "ok"]
    # the saved image really drives the unit harder than the starting image (no transforms here)
    start = render_units(model, blocks, layer, ref, [0, 1], **schema_fv_settings(steps=1, jitter=0, lr=1e-12))
    with torch.no_grad():
        norm = lambda im: (
            (torch.from_numpy(im) - torch.tensor([0.485, 0.456, 0.406])[:, None, None])
            / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
        )
        a_end = block_taps(model, norm(res.images), [ref])[ref][:, :, 14, 14]
        a_start = block_taps(model, norm(start.images), [ref])[ref][:, :, 14, 14]
    for i, c in enumerate([0, 1]):
        assert a_end[i, c] > a_start[i, c]


def test_rf_crop_gives_the_same_objective_as_the_full_image(net):
    model, blocks = net
    ref = TapRef("2.1", "B")
    crop = render_units(
        model, blocks, "layer2.1.bn2", ref, [3, 4], **schema_fv_settings(steps=2, jitter=4, rf_crop=True)
    )
    full = render_units(
        model, blocks, "layer2.1.bn2", ref, [3, 4], **schema_fv_settings(steps=2, jitter=4, rf_crop=False)
    )
    np.testing.assert_allclose(crop.curve, full.curve, atol=1e-4)


def test_author_alias_optimises_relu_of_the_output(net):
    model, blocks = net
    ref = TapRef("1.1", "B")
    intended = render_units(
        model, blocks, "layer1.1.bn2", ref, list(range(12)), **schema_fv_settings(steps=1, jitter=0, hook="intended")
    )
    alias = render_units(
        model,
        blocks,
        "layer1.1.bn2",
        ref,
        list(range(12)),
        **schema_fv_settings(steps=1, jitter=0, hook="author_alias"),
    )
    assert (intended.curve[:, 0] < 0).any()  # B itself can be negative...
    assert (alias.curve[:, 0] >= 0).all()  # ...but the aliased reading is relu(O)


def test_dead_units_are_recorded_beside_live_ones(net):
    model, blocks = net
    broken = copy.deepcopy(model)
    bn = broken.layer1[1].bn2
    with torch.no_grad():
        bn.weight[3] = 0.0
        bn.bias[3] = -1.0  # B_3 == -1 everywhere: can never rise above 0
    res = render_units(
        broken,
        model_blocks(broken),
        "layer1.1.bn2",
        TapRef("1.1", "B"),
        [2, 3],
        **schema_fv_settings(steps=3, jitter=0),
    )
    assert res.status == ["ok", "dead"]
    assert np.isfinite(res.images).all()


def test_nan_during_optimisation_is_recorded(net):
    model, blocks = net
    res = render_units(
        model, blocks, "layer1.1.bn2", TapRef("1.1", "B"), [0, 1], **schema_fv_settings(steps=3, jitter=0, lr=1e36)
    )
    assert res.status == ["nan", "nan"]
    with pytest.raises(FVError, match="lower fv.lr"):  # Adam's step itself overflows
        render_units(
            model, blocks, "layer1.1.bn2", TapRef("1.1", "B"), [0], **schema_fv_settings(steps=2, jitter=0, lr=1e38)
        )


def _with_nan_bn2_weights(model, channels):
    """A copy of ``model`` whose B of block 1.1 is NaN in ``channels`` (bn2's shift NaN there: its
    scale would make every unit's gradient NaN through the shared backward, 0 x NaN)."""
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.layer1[1].bn2.bias[channels] = float("nan")
    return broken


def _render_folder(model, channels, out_dir):
    from resstream.fv.job import render_fv_folder
    from resstream.fv.settings import FVSettings
    from resstream.model.weights_identity import WeightsIdentity

    identity = WeightsIdentity(arch="resnet18", source="random:0", kind="random", state_dict_sha256="0" * 64)
    settings = FVSettings(**schema_fv_settings(steps=2, jitter=0))
    return render_fv_folder(
        model,
        identity,
        model_blocks(model),
        "layer1.1.bn2",
        channels,
        settings,
        str(out_dir),
        log_every=1,
        what="layer1.1.bn2 c0000-0063",
    )


def test_a_chunk_whose_every_unit_ends_non_finite_fails_and_writes_nothing(net, tmp_path):
    model, _ = net
    out = tmp_path / "fv" / "layer1.1.bn2" / "c0000-0063"
    out.parent.mkdir(parents=True)
    with pytest.raises(FVError) as err:
        _render_folder(_with_nan_bn2_weights(model, [0, 2]), [0, 2], out)
    assert str(err.value) == (
        "FV chunk layer1.1.bn2 c0000-0063: every unit (layer layer1.1.bn2, channels [0, 2]) ended non-finite (NaN "
        "or Inf) during optimisation; nothing was written. Fix: lower fv.lr (now 0.05; per layer: fv.overrides) or "
        "check the weights for NaN or Inf, then rerun"
    )
    assert not out.exists() and os.listdir(out.parent) == []  # no folder, no partial


def test_a_chunk_with_some_non_finite_units_records_each_units_status(net, tmp_path, caplog):
    from resstream.fv.fv_file import read_fv_file

    model, _ = net
    out = tmp_path / "c0000-0063"
    with caplog.at_level("WARNING", logger="resstream.fv.render"):
        _render_folder(_with_nan_bn2_weights(model, [2]), [0, 2], out)
    assert read_fv_file(str(out)).status_by_channel() == {
        0: "dead",
        2: "nan",
    }  # 2 steps of a random net: 0 stays below 0
    assert (
        "unit layer1.1.bn2 channel 2 produced NaN during optimisation (lr 0.05): recorded as 'nan'; "
        "fix: lower fv.lr (or fv.overrides) and rerun this chunk"
    ) in caplog.messages


@pytest.fixture
def demo_cfg(tmp_path, sample_dir):
    return validate_config(
        {
            "results": str(tmp_path / "results"),
            "model": {"weights": "random:0", "device": "cpu"},
            "study": {"blocks": ["1.1"], "channels": [0, 2]},
            "dataset": {"path": str(sample_dir)},
            "fv": {"steps": 3},
        }
    )


def test_fv_job_writes_pngs_and_h5_atomically(demo_cfg, tmp_path):
    out = str(tmp_path / "results" / "fv" / "layer1.1.bn2" / "c0000-0063")
    render_chunk(demo_cfg, "layer1.1.bn2", "c0000-0063", out)
    assert sorted(os.listdir(out)) == ["fv.h5", "unit0000.png", "unit0002.png"]
    assert not any(".partial" in d for d in os.listdir(os.path.dirname(out)))
    with h5py.File(os.path.join(out, "fv.h5")) as f:
        assert list(f["channels"][:]) == [0, 2]
        assert [s.decode() for s in f["status"][:]] == ["ok", "ok"] or all(
            s in (b"ok", b"dead") for s in f["status"][:]
        )
        assert f["curve"].shape == (2, 3) and f["image"].shape == (2, 3, 224, 224)
        assert np.array_equal(f["final_activation"][:], f["curve"][:, -1])
        import json

        assert json.loads(f.attrs["weights"])["kind"] == "random"
        assert json.loads(f.attrs["settings"])["steps"] == 3
        # the PNG is the author's truncation of the float image
        png = np.asarray(Image.open(os.path.join(out, "unit0002.png")))
        assert png.shape == (224, 224, 3) and png.dtype == np.uint8
        assert np.array_equal(png, (np.transpose(f["image"][1], (1, 2, 0)) * 255).astype(np.uint8))
    # finished work is never silently replaced
    with pytest.raises(FVError, match="already holds FV results"):
        render_chunk(demo_cfg, "layer1.1.bn2", "c0000-0063", out)
    assert sorted(os.listdir(out)) == ["fv.h5", "unit0000.png", "unit0002.png"]


def test_channel_objective_fvs_for_display(demo_cfg, tmp_path):
    """The fv_channel_chunk job: whole-map FVs of the studied channels of an O layer, never cropped
    to a receptive field whatever fv.rf_crop says (so that setting does not rerun them)."""
    from resstream.fv.fv_file import read_fv_file

    out = str(tmp_path / "results" / "channel_fv" / "layer1.1.prerelu_out" / "c0000-0063")
    cfg = copy.deepcopy(demo_cfg)
    cfg["fv"]["steps"] = 15
    done = render_chunk(cfg, "layer1.1.prerelu_out", "c0000-0063", out, objective="channel")
    assert done["channels"] == [0, 2]
    assert sorted(os.listdir(out)) == ["fv.h5", "unit0000.png", "unit0002.png"]
    with h5py.File(os.path.join(out, "fv.h5")) as f:
        assert f.attrs["objective"] == "channel"
        assert json.loads(f.attrs["settings"])["rf_crop"] is False and cfg["fv"]["rf_crop"] is True
        curve = f["curve"][:]
    assert (curve[:, -1] > curve[:, 0]).all()  # the channel's mean activation rose
    assert read_fv_file(out).status_by_channel() == dict(zip(done["channels"], done["status"]))
