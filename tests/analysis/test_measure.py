"""Measurement against independent computations (tests/helpers/manual_forward.py): a manual forward through
each block's own submodules (no hooks, no in-place ops), F.interpolate for the scale transforms,
numpy for the PNG."""

import json
import os

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from helpers.job_calls import fv_dirs_of_block
from helpers.manual_forward import (
    manual_fv_input,
    manual_maps,
    manual_png,
    manual_role,
    manual_scale_down,
    manual_scale_up,
)
from helpers.synthetic import fabricated_study
from resstream.analysis import measure, measure_dataset, measure_job
from resstream.analysis.summary import AnalysisError
from resstream.base.paths import activations_h5, fv_png
from resstream.data.dataset import ImageFolderDataset, ImageRecord
from resstream.workflow.plan import StudyPlan

BLOCKS = ("1.1", "2.0", "2.1")
CHANNELS = (0, 1, 2)


def measure_fv(model, identity, study, block, results=None, **kwargs):
    """The FV measurement of a block as its job runs it: the block's FV chunk folders as input
    (those under ``results`` when given, a copy of the study's)."""
    dirs = fv_dirs_of_block(study, block)
    if results is not None:
        dirs = [d.replace(study.config["results"], str(results), 1) for d in dirs]
    kwargs.setdefault("batch_size", study.config["analysis"]["batch_size"])
    return measure.measure_fv_block(model, identity, study.blocks, block, list(CHANNELS), study.o_relu, dirs, **kwargs)


@pytest.fixture(scope="module")
def study_setup(tmp_path_factory, random_model, sample_dir):
    model, identity = random_model
    config, study = fabricated_study(
        tmp_path_factory.mktemp("results"),
        sample_dir,
        random_model,
        BLOCKS,
        CHANNELS,
        n_images=16,
        grids=False,
        status={("layer2.0.bn2", 1): "dead"},
        bad=(5,),
    )
    return config, study, model, identity


def test_fv_png_is_reloaded_without_resize(study_setup):
    config, study, *_ = study_setup
    path = fv_png(config["results"], "layer1.1.bn2", study.chunks("layer1.1.bn2")[0].name, 0)
    x = measure.load_fv_png(path)
    assert x.shape == (3, 224, 224)
    torch.testing.assert_close(x, manual_png(path), atol=1e-6, rtol=0)


def test_scale_transforms_match_interpolate():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224)
    torch.testing.assert_close(measure.scale_up(x), manual_scale_up(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(measure.scale_down(x), manual_scale_down(x), atol=1e-6, rtol=0)
    # no antialiasing: an antialiased downscale differs clearly on noise
    aa = F.interpolate(x, size=(112, 112), mode="bilinear", align_corners=False, antialias=True)
    assert (measure.scale_down(x)[..., 56:168, 56:168] - aa).abs().max() > 0.1


@pytest.mark.parametrize("block", BLOCKS)
def test_fv_measurement_matches_manual_forward(study_setup, block):
    _, study, model, identity = study_setup
    df, meta = measure_fv(model, identity, study, block, batch_size=2)
    layers = meta["layers"]
    for k, c in enumerate(CHANNELS):
        x_i, x_b = (manual_fv_input(study, layers[role], c) for role in ("I", "B"))
        m_i, m_b = manual_maps(model, x_i), manual_maps(model, x_b)
        m_si, m_sb = manual_maps(model, manual_scale_up(x_i)), manual_maps(model, manual_scale_down(x_b))
        expected = {
            "out_in": manual_role(m_i, block, "O")[0, c],
            "out_mid": manual_role(m_b, block, "O")[0, c],
            "in_in": manual_role(m_i, block, "I")[0, c],
            "mid_mid": manual_role(m_b, block, "B")[0, c],
            "in_mid": manual_role(m_i, block, "B")[0, c],
            "I_of_xB": manual_role(m_b, block, "I")[0, c],
            "B_of_SxI": manual_role(m_si, block, "B")[0, c],
            "I_of_SinvxB": manual_role(m_sb, block, "I")[0, c],
        }
        row = df.iloc[k]
        assert row["channel"] == c
        for col, value in expected.items():
            assert row[col] == pytest.approx(float(value), abs=1e-4), (block, c, col)
        assert row["relu_B_of_SxI"] == pytest.approx(max(float(expected["B_of_SxI"]), 0.0), abs=1e-4)
        assert row["relu_I_of_xB"] == pytest.approx(max(float(expected["I_of_xB"]), 0.0), abs=1e-4)
    # O = B + identity exactly for the downsample block (its I is the identity it adds)
    if block == "2.0":
        np.testing.assert_allclose(df["out_in"], df["in_mid"] + df["in_in"], atol=1e-5)
    assert meta["weights"]["kind"] == "random" and meta["o_relu"] == "pre"


def test_fv_status_from_h5_and_missing_png_are_recorded(study_setup, tmp_path):
    config, study, model, identity = study_setup
    df, _ = measure_fv(model, identity, study, "2.0")
    assert list(df["fv_status_B"]) == ["ok", "dead", "ok"]
    # a lost PNG: NaN readings and status 'missing', no crash
    import shutil

    results = tmp_path / "copy"
    shutil.copytree(config["results"], results)
    chunk = study.chunks("layer2.0.bn2")[0].name
    (results / "fv" / "layer2.0.bn2" / chunk / "unit0000.png").unlink()
    df, _ = measure_fv(model, identity, study, "2.0", results=results)
    assert df["fv_status_B"][0] == "missing"
    assert np.isnan(df["mid_mid"][0]) and np.isnan(df["out_mid"][0])
    assert np.isfinite(df["mid_mid"][2]) and np.isfinite(df["in_in"][0])


def test_o_relu_post_changes_taps_but_not_the_mix_ratio(study_setup, sample_dir, random_model):
    """docs/method.md#taps-i-b-and-o: M uses only signs and ratios of positive values, so pre/post O give the same M,
    except a 'dead' unit (both negative pre-ReLU) which post-ReLU reads as the out_mid<=0 rule."""
    from resstream.analysis import metrics

    config, study, model, identity = study_setup
    post_cfg = json.loads(json.dumps(config))
    post_cfg["study"]["o_relu"] = "post"
    post = StudyPlan(post_cfg)
    # same stimuli: the FVs of the pre study, looked up under the post layer names
    df_pre, meta_pre = measure_fv(model, identity, study, "2.0")
    x_units = {
        r: measure.fv_png_and_status(fv_dirs_of_block(study, "2.0"), meta_pre["layers"][r], CHANNELS) for r in "IB"
    }
    assert measure.role_layers(post.blocks, "2.0", "post")["O"] == "layer2.0"
    assert measure.role_layers(post.blocks, "2.1", "post")["I"] == "layer2.0"
    taps = measure.block_role_taps(post.blocks, "2.0", "post")
    xi = torch.stack([measure.load_fv_png(x_units["I"][c][0]) for c in CHANNELS])
    xb = torch.stack([measure.load_fv_png(x_units["B"][c][0]) for c in CHANNELS])
    ri, rb = (measure.center_responses(model, x, taps, post.blocks) for x in (xi, xb))
    ch = np.array(CHANNELS)
    out_in, out_mid = measure.pick(ri["O"], ch), measure.pick(rb["O"], ch)
    assert (out_in >= 0).all() and (out_mid >= 0).all()  # post-ReLU
    m_post = metrics.mix_ratio(out_in, out_mid)
    m_pre = metrics.mix_ratio(df_pre["out_in"], df_pre["out_mid"])
    alive = m_pre.status != metrics.MIX_DEAD
    np.testing.assert_allclose(m_post.raw[alive], m_pre.raw[alive], rtol=1e-6)


def test_weights_and_rho_columns(study_setup):
    config, study, model, identity = study_setup
    df, meta = measure_fv(model, identity, study, "2.1")
    path = activations_h5(config["results"])
    df = measure_dataset.add_weights_and_rho(df, model, study.blocks, "2.1", study.o_relu, path, identity)
    block = model.layer2[1]
    for k, c in enumerate(CHANNELS):
        assert df["bn_gamma_abs"][k] == pytest.approx(float(block.bn2.weight[c].abs()))
        assert df["conv_w_abs_mean"][k] == pytest.approx(float(block.conv2.weight[c].abs().mean()), rel=1e-6)
    with h5py.File(path, "r") as f:
        ok = f["images/ok"][:]
        i_curve = f[f"layers/{meta['layers']['I']}"][:][ok]
        b_curve = f[f"layers/{meta['layers']['B']}"][:][ok]
    for k, c in enumerate(CHANNELS):
        keep = i_curve[:, c] > 0
        if keep.sum() >= 3:
            assert df["rho_BI"][k] == pytest.approx(stats.spearmanr(i_curve[keep, c], b_curve[keep, c]).statistic)
            assert df["rho_n"][k] == keep.sum()
        else:
            assert np.isnan(df["rho_BI"][k]) and "too few" in df["rho_status"][k]


def test_other_weights_are_refused(study_setup):
    config, study, model, identity = study_setup
    from resstream.model.weights import load_model

    other_model, other = load_model("resnet18", "random:1")
    with pytest.raises(AnalysisError, match="was made with weights .*random:0.* but the analysis uses .*random:1"):
        measure_fv(other_model, other, study, "1.1")
    with pytest.raises(AnalysisError, match="activations.h5 was made with weights"):
        measure_dataset.add_weights_and_rho(
            measure_fv(model, identity, study, "1.1")[0],
            other_model,
            study.blocks,
            "1.1",
            study.o_relu,
            activations_h5(config["results"]),
            other,
        )


def test_imagenet_variant_means_over_top9(study_setup, sample_dir):
    config, study, model, identity = study_setup
    path = activations_h5(config["results"])
    df, meta = measure_dataset.measure_imagenet_block(
        model, identity, study.blocks, "2.1", list(CHANNELS), study.o_relu, path, batch_size=5
    )
    assert meta["dataset"] == os.path.realpath(sample_dir)  # the folder the activations file was made from
    layers = meta["layers"]
    with h5py.File(path, "r") as f:
        paths = f["images/path"].asstr()[:]
        ok = f["images/ok"][:]
        top_i = f[f"topk/{layers['I']}/index"][:]
        top_b = f[f"topk/{layers['B']}/index"][:]
        stored = {r: f[f"layers/{layers[r]}"][:].astype(np.float64) for r in "IBO"}
    assert meta["max_abs_diff_vs_activations_h5"] < 1e-4
    ds = ImageFolderDataset(sample_dir, records=[ImageRecord(i, p, -1, "") for i, p in enumerate(paths)])
    for k, c in enumerate(CHANNELS):
        vi, vb = top_i[c], top_b[c]
        use_i, use_b = vi[ok[vi]], vb[ok[vb]]  # image 5 is marked unreadable in the file
        # unscaled quantities: means of the stored activations over the channel's own top images
        assert df["in_in"][k] == pytest.approx(stored["I"][use_i, c].mean(), abs=1e-4)
        assert df["in_mid"][k] == pytest.approx(stored["B"][use_i, c].mean(), abs=1e-4)
        assert df["out_in"][k] == pytest.approx(stored["O"][use_i, c].mean(), abs=1e-4)
        assert df["mid_mid"][k] == pytest.approx(stored["B"][use_b, c].mean(), abs=1e-4)
        assert df["out_mid"][k] == pytest.approx(stored["O"][use_b, c].mean(), abs=1e-4)
        # mean of ReLU, not ReLU of the mean
        assert df["relu_B_of_xI"][k] == pytest.approx(np.maximum(stored["B"][use_i, c], 0).mean(), abs=1e-4)
        # scaled: manual forward of S(V_I) and S^-1(V_B)
        xi = torch.stack([ds[int(i)][0] for i in use_i])
        xb = torch.stack([ds[int(i)][0] for i in use_b])
        b_s = manual_role(manual_maps(model, manual_scale_up(xi)), "2.1", "B")[:, c].double().numpy()
        i_s = manual_role(manual_maps(model, manual_scale_down(xb)), "2.1", "I")[:, c].double().numpy()
        assert df["B_of_SxI"][k] == pytest.approx(b_s.mean(), abs=1e-4)
        assert df["relu_B_of_SxI"][k] == pytest.approx(np.maximum(b_s, 0).mean(), abs=1e-4)
        assert df["relu_I_of_SinvxB"][k] == pytest.approx(np.maximum(i_s, 0).mean(), abs=1e-4)
        assert df["top9_I"][k] == " ".join(map(str, vi))
        bad = 5 in set(vi) | set(vb)
        assert (df["stimulus_status"][k] != "ok") == bad


def test_the_imagenet_job_reads_the_activations_file_once_for_the_same_rho(study_setup, tmp_path, monkeypatch):
    """The ImageNet measurement job hands the I and B columns it read to the rho computation: one
    opening of the file, and rho exactly as computed from a reading of its own."""
    from resstream.analysis.summary import read_table

    config, study, model, identity = study_setup
    path = activations_h5(config["results"])
    opened, open_checked = [], measure_dataset._open_checked
    monkeypatch.setattr(measure_dataset, "_open_checked", lambda *args: opened.append(args[0]) or open_checked(*args))
    out = tmp_path / "imagenet_raw.csv"
    job = measure_job.run_block_measurement(
        "imagenet",
        "2.1",
        list(CHANNELS),
        study.o_relu,
        {"arch": "resnet18", "weights": "random:0", "checkpoint": "torchvision"},
        path,
        str(out),
        batch_size=5,
        device="cpu",
    )
    assert opened == [path]
    rho_columns = ["bn_gamma_abs", "conv_w_abs_mean", "rho_BI", "rho_BI_p", "rho_n", "rho_status"]
    apart = measure_dataset.add_weights_and_rho(
        job.drop(columns=rho_columns), model, study.blocks, "2.1", study.o_relu, path, identity
    )
    assert len(opened) == 2
    assert list(apart.columns) == list(job.columns)
    assert list(read_table(str(out))[0]["channel"]) == list(CHANNELS)
    assert apart[rho_columns].equals(job[rho_columns])
