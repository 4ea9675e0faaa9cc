"""Figures and summary from hand-made tables; the analysis stage inside Snakemake."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from helpers.configs import write_config
from helpers.figure_files import check_figure_files
from helpers.hand_tables import PRETRAINED, hand_raw, write_hand_tables
from helpers.synthetic import fabricated_study
from helpers.workflow import smk
from resstream.analysis import figure_marks, figures, grid_figures, metrics, table_figures
from resstream.analysis import summary as analysis
from resstream.analysis.scorecard import MEANINGLESS, scorecard_outputs
from resstream.analysis.summary import AnalysisError, build_summary, metric_table_csv


def test_hand_table_gives_the_worked_values():
    t = metrics.metric_table(hand_raw("2.1"))
    np.testing.assert_allclose(t["M_raw"], [1.0, 0.5, 3.0, 10.0, np.nan, 1.2])
    assert list(t["pass_nomix"]) == [True, True, False, True, True, True]
    assert list(t["pass_all"]) == [True, False, False, False, False, True]
    np.testing.assert_allclose(t["SM"][[0, 5]], [1.0, 0.7])


def test_summary_by_hand(tmp_path):
    fv, imnet = write_hand_tables(tmp_path)
    s = build_summary(fv, imnet, str(tmp_path / "summary.json"), fig34_blocks=["2.1"])
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(s))
    b = s["blocks"]["2.1"]
    assert b["spectrum_counts"] == {"overwrite": 1, "mix": 2, "skip": 2, "no_mix_ratio": 1}
    assert b["mix_rules_applied"] == {
        metrics.MIX_RULE_SKIP: 1,
        metrics.MIX_RULE_OVERWRITE: 0,
        metrics.MIX_DEAD: 1,
        metrics.MIX_NAN: 0,
    }
    # 2 of 6 pass all criteria, 5 of 6 without the mix criterion
    assert b["percent_scale_invariant"]["fv_all_criteria"] == pytest.approx(33.333)
    assert b["percent_scale_invariant"]["fv_without_mix_criterion"] == pytest.approx(83.333)
    # ImageNet: ch1 (M .9) and ch5 pass all; ch0 fails (m = -.5)
    assert b["percent_scale_invariant"]["imagenet_all_criteria"] == pytest.approx(33.333)
    # the same as counts; ImageNet without the mix criterion: ch1, 3, 4, 5 (ch0 and ch2 fail m)
    assert b["scale_invariant_counts"] == {
        "fv_all_criteria": 2,
        "fv_without_mix_criterion": 5,
        "imagenet_all_criteria": 2,
        "imagenet_without_mix_criterion": 4,
    }
    assert b["top_by_scale_metric"] == [0, 5]  # SM 1.0, 0.7
    assert b["closest_to_one"] == [0, 5, 1]  # |M-1| = 0, 0.2, 0.5
    assert b["both_criteria_fig7"] == [5]  # FV {0, 5} and ImageNet {1, 5}
    assert s["weights"]["kind"] == "random" and s["weights_source"] == s["weights"]["weights_source"] == "random"
    # Fig 3/4 statistics for the chosen block only; rho's NaN (ch4) is counted, not fatal
    assert "stats" in b and "stats" not in s["blocks"]["2.0"]
    assert b["stats"]["fig4_rho_undefined"] == 1
    # Fig 4 groups: overwrite M<1 = ch1 (in_mid -1); skip M>=1 = ch0, 2, 3, 5 (in_mid -.5, .5, .2, .1)
    assert b["stats"]["fig4_in_mid_means"]["overwrite"] == pytest.approx(-1.0)
    assert b["stats"]["fig4_in_mid_means"]["skip"] == pytest.approx(0.075)
    assert "fewer than 2" in b["stats"]["fig4_in_mid_anova"]["status"]  # one overwrite channel


def test_summary_refuses_tables_of_different_weights(tmp_path):
    fv, imnet = write_hand_tables(tmp_path, blocks=("2.0",))
    fv2, imnet2 = write_hand_tables(tmp_path / "other", weights=PRETRAINED, blocks=("2.1",))
    with pytest.raises(AnalysisError, match="Fix: rerun the measurements"):
        build_summary({**fv, **fv2}, {**imnet, **imnet2})


def test_fig2_layout():
    rows, cols, slots = table_figures.fig2_layout(list(table_figures.PAPER_BLOCKS))
    assert (rows, cols) == (2, 4) and slots == {"1.1": 0, "2.0": 1, "2.1": 2, "3.0": 4, "3.1": 5, "4.0": 6, "4.1": 7}
    assert table_figures.fig2_layout(["2.1", "3.1"]) == (1, 2, {"2.1": 0, "3.1": 1})
    rows, cols, slots = table_figures.fig2_layout(["1.1", "2.0", "2.1", "3.0", "3.1"])
    assert (rows, cols) == (2, 4) and slots["3.1"] == 4


@pytest.fixture(scope="module")
def pictures(tmp_path_factory, random_model, sample_dir):
    """FV PNGs and exemplar grids for blocks 2.0 and 2.1, channels 0-5."""
    results = tmp_path_factory.mktemp("pictures")
    fabricated_study(results, sample_dir, random_model, ("2.0", "2.1"), range(6), n_images=10)
    return results


def picture_folders(results):
    """What a figure job is given besides its tables: the FV chunk folders and the exemplar folders."""
    results = Path(results)
    return {
        "fv_dirs": sorted(map(str, results.glob("fv/*/c*"))),
        "exemplar_dirs": sorted(map(str, results.glob("activations/exemplars/*"))),
    }


@pytest.mark.parametrize("fig", list(analysis.FIGURES))
def test_every_figure_from_csv_tables(tmp_path, pictures, fig):
    fv, imnet = write_hand_tables(pictures / f"tables-{fig}")
    png, pdf = tmp_path / f"{fig}.png", tmp_path / f"{fig}.pdf"
    texts = figures.make_figure(fig, fv, imnet, str(png), str(pdf), **picture_folders(pictures))
    check_figure_files(png, pdf)
    assert figure_marks.RANDOM_MARK in texts  # random weights: marked
    assert any("RANDOM WEIGHTS (random:0" in t for t in texts)  # and named in the title
    assert any(f"Fig {fig[3:]}" in t for t in texts)
    if fig in ("fig2", "fig3", "fig4"):
        assert any(t.startswith("2.1") for t in texts)  # panels titled by block


def test_pretrained_figures_carry_no_random_mark(tmp_path):
    fv, _ = write_hand_tables(tmp_path, weights=PRETRAINED)
    texts = figures.make_figure("fig5", fv, {}, str(tmp_path / "f.png"), str(tmp_path / "f.pdf"))
    assert figure_marks.RANDOM_MARK not in texts and any("IMAGENET1K_V1" in t for t in texts)


def test_custom_checkpoint_figures_carry_the_custom_mark(tmp_path):
    custom = {
        "arch": "resnet18",
        "source": "/ckpt/robust.pth",
        "kind": "custom",
        "weights_source": "custom",
        "state_dict_sha256": "cc" * 32,
        "file_sha256": "0123456789ab" + "d" * 52,
        "label": "resnet18 custom checkpoint robust.pth (file sha256 0123456789ab, not torchvision's weights)",
    }
    fv, _ = write_hand_tables(tmp_path, weights=custom)
    texts = figures.make_figure("fig2", fv, {}, str(tmp_path / "f.png"), str(tmp_path / "f.pdf"))
    assert figure_marks.RANDOM_MARK not in texts
    assert "CUSTOM CHECKPOINT — not torchvision's weights (file sha256 0123456789ab)" in texts
    assert any("custom checkpoint robust.pth" in t for t in texts)
    # the summary says what is known of the weights: a checkpoint of one's own, not "pretrained"
    summary = build_summary(fv, {}, str(tmp_path / "summary.json"))
    assert summary["weights_source"] == "custom" and "pretrained" not in summary


def test_grids_draw_missing_pictures_as_blank_cells(tmp_path):
    fv, _ = write_hand_tables(tmp_path)  # no FV PNGs or exemplar grids under tmp_path
    png, pdf = tmp_path / "f8.png", tmp_path / "f8.pdf"
    figures.make_figure("fig8", fv, {}, str(png), str(pdf))
    check_figure_files(png, pdf)


def test_fig1_channels_default_and_listed(tmp_path, pictures):
    t = metrics.metric_table(hand_raw("2.1"))
    # lowest M = ch4? no: ch4 is dead (NaN) and left out -> lowest ch1 (.5), closest to 1 ch0, highest ch3 (5)
    assert grid_figures.spectrum_examples(t) == [1, 0, 3]
    fv, _ = write_hand_tables(tmp_path)
    texts = figures.make_figure(
        "fig1",
        fv,
        {},
        str(tmp_path / "a.png"),
        str(tmp_path / "a.pdf"),
        figure_channels={"2.1": [5, 99]},
        **picture_folders(pictures),
    )
    assert any("analysis.figure_channels" in t for t in texts)


def test_image_grids_show_the_pictures_they_are_given(tmp_path, pictures):
    """Fig 8's cells hold the FV PNG and exemplar grid of each row's unit, from the folders given
    (and only those): without them every cell says "missing"."""
    fv, _ = write_hand_tables(tmp_path)
    source = grid_figures.ImageSource(**picture_folders(pictures))
    layer = "layer2.1.bn2"
    png = next(Path(pictures).glob(f"fv/{layer}/c*/unit0003.png"))
    assert np.array_equal(source.fv(layer, 3), np.asarray(Image.open(png).convert("RGB")))
    grid = Path(pictures) / "activations" / "exemplars" / layer / "unit0003.png"
    assert np.array_equal(source.exemplars(layer, 3), np.asarray(Image.open(grid).convert("RGB")))
    assert grid_figures.ImageSource().fv(layer, 3) is None and source.channel_fv(layer, 3) is None


def test_channel_fv_columns_are_those_of_the_roles_that_have_them(tmp_path, pictures):
    """Figs 1 and 6 show the channel FVs of the roles atlas.channel_fvs renders (default O only)."""
    assert (
        grid_figures.channel_grid_columns(("O",))
        == grid_figures.GRID_COLUMNS[:3] + (("chfv", "O"),) + grid_figures.GRID_COLUMNS[3:]
    )
    assert grid_figures.channel_grid_columns(()) == grid_figures.GRID_COLUMNS
    fv, _ = write_hand_tables(tmp_path)
    texts = figures.make_figure(
        "fig6",
        fv,
        {},
        str(tmp_path / "f.png"),
        str(tmp_path / "f.pdf"),
        channel_fv_roles=["O"],
        **picture_folders(pictures),
    )
    assert "channel FV O" in texts and "channel FV I" not in texts and "centre FV I" in texts


# --- the workflow ------------------------------------------------------------------------------------------


def test_demo_dag_includes_every_figure_and_the_summary(tmp_path, sample_dir):
    proc = smk(
        "-n",
        "--cores",
        "2",
        "--configfile",
        "demo.yaml",
        "--config",
        f"results={tmp_path}",
        f"dataset={{path: {sample_dir}}}",
    )
    for fig in analysis.FIGURES:
        for fmt in analysis.FIGURE_FORMATS:
            assert analysis.figure_file(str(tmp_path), fig, fmt) in proc.stdout, (fig, fmt)
    assert analysis.summary_json(str(tmp_path)) in proc.stdout
    assert scorecard_outputs(str(tmp_path))["md"] in proc.stdout
    for rule in (
        "measure_fv",
        "measure_imagenet",
        "metric_table",
        "analysis_summary",
        "fv_chunk",
        "activations",
        "paper_check",
    ):
        assert f"rule {rule}:" in proc.stdout or f"localrule {rule}:" in proc.stdout, rule


def test_analysis_stage_runs_in_snakemake(tmp_path, random_model, sample_dir):
    """Real jobs on fabricated FV and dataset outputs (one block): summary.json and Fig 7."""
    _, identity = random_model
    config, _ = fabricated_study(tmp_path / "results", sample_dir, random_model, ("2.1",), (0, 1, 2), n_images=12)
    config["model"]["device"] = "auto"  # the jobs decide: the GPU they declare, else the CPU, saying why
    cfg_path = write_config(tmp_path / "config.yaml", config)
    results = config["results"]
    fig7 = analysis.figure_file(results, "fig7", "png")
    card = scorecard_outputs(results)
    smk(analysis.summary_json(results), fig7, card["md"], "--cores", "2", "--configfile", cfg_path, timeout=900)
    # the scorecard: random weights, so its title says the comparison is meaningless and no row has a
    # verdict (the numbers are still shown: 2.1's 3 of 128 channels)
    md = open(card["md"]).read()
    assert (
        md.splitlines()[0].endswith(MEANINGLESS)
        and "Verdicts: 0 reproduced, 0 partly, 0 not reproduced, 0 not applicable, " in md
    )
    checked, _ = analysis.read_table(card["csv"])
    assert set(checked["verdict"]) == {"not judged (random weights)"}
    assert re.match(
        r"\d of 3 channels \(\d+\.\d %\)$", checked.loc[checked["claim_id"] == "fig5_2.1_many", "this_run"].iloc[0]
    )
    summary = json.loads(open(analysis.summary_json(results)).read())
    assert list(summary["blocks"]) == ["2.1"] and summary["weights"]["state_dict_sha256"] == identity.state_dict_sha256
    assert summary["blocks"]["2.1"]["channels"] == 3
    assert summary["blocks"]["2.1"]["imagenet_max_abs_diff_vs_activations_h5"] < 1e-4
    table, meta = analysis.read_table(metric_table_csv(results, "2.1", "fv"))
    plain = pd.read_csv(metric_table_csv(results, "2.1", "fv"))  # a plain CSV, the weights in the last column
    assert list(plain.columns)[-1] == "weights" and set(plain["weights"]) == {identity.label}
    assert meta["weights"]["label"] == identity.label and "RANDOM WEIGHTS" in identity.label
    assert list(table["channel"]) == [0, 1, 2] and meta["analysis"]["mix_factor"] == 1.5
    assert set(metrics.RAW_COLUMNS) <= set(table.columns)
    for col in ("M", "m", "n", "SM", "pass_all", "pass_nomix", "status", "bn_gamma_abs", "conv_w_abs_mean", "rho_BI"):
        assert col in table.columns
    check_figure_files(Path(fig7), Path(analysis.figure_file(results, "fig7", "pdf")))
    job_log = Path(results, "logs", "analysis", "measure_imagenet_2.1.log").read_text()
    if torch.cuda.is_available():
        assert "with imagenet stimuli on cuda" in job_log
    else:
        assert job_log.count("running on the CPU because this job declares no GPU") == 1
        assert "with imagenet stimuli on cpu" in job_log


@pytest.mark.parametrize("rows, height_px", [(2, int((1.9 * 2 + 1.3) * 110)), (21, int((0.8 * 21 + 1.3) * 110))])
def test_channel_grids_fit_about_a_page(tmp_path, rows, height_px):
    """Few rows keep their 1.9 in; Fig 8's 21 rows (7 blocks x 3) shrink to 0.8 in, so the PNG is
    ~2,000 px tall instead of 4,114 (7 MB), and it is saved in 256 colours."""
    picture = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    chunk = tmp_path / "fv" / "layer2.1.bn2" / "c0000-0063"
    chunk.mkdir(parents=True)
    for c in range(rows):
        Image.fromarray(picture).save(chunk / f"unit{c:04d}.png")
    grid = [{"block": "2.1", "channel": c, "label": f"2.1 ch {c}"} for c in range(rows)]
    layers = {"2.1": {"I": "layer2.1.bn2", "B": "layer2.1.bn2", "O": "layer2.1.bn2"}}
    png, pdf = tmp_path / "grid.png", tmp_path / "grid.pdf"
    grid_figures.channel_grid(
        grid, layers, grid_figures.ImageSource(fv_dirs=[str(chunk)]), "t", None, str(png), str(pdf)
    )
    check_figure_files(png, pdf)
    with Image.open(png) as img:
        assert abs(img.size[1] - height_px) <= 2 and img.mode == "P"
    assert grid_figures.grid_row_inches(rows) == (1.9 if rows == 2 else 0.8)
