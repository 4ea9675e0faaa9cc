"""demo-timm.yaml through the workflow on tiny inputs (timm:resnet18, random weights, block 2.1,
one channel, 2 FV steps, 6 images the test makes): model card, FVs, dataset pass, tables, Fig 2,
atlas and paper check; then the cross-model comparison of that timm run with a torchvision resnet18
run (hand-made tables) of the same architecture."""

import json

import pytest

from helpers import REPO
from helpers.configs import tiny_config_file
from helpers.hand_tables import RANDOM
from helpers.sample_images import make_image_folder
from helpers.workflow import smk
from resstream.analysis import summary as analysis
from resstream.analysis.summary import read_table
from resstream.compare.runs import compare_runs

LAYERS = {"I": "layer2.0.prerelu_out", "B": "layer2.1.bn2", "O": "layer2.1.prerelu_out"}


@pytest.fixture(scope="module")
def timm_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("timm_run")
    data = make_image_folder(tmp / "data", n_classes=6)
    cfg = tiny_config_file(
        tmp,
        data,
        model={"arch": "timm:resnet18"},
        study={"blocks": ["2.1"], "channels": [0]},
        activations={"batch_size": 3},
    )
    results = tmp / "results"
    # every stage the atlas and the paper check need, and one figure (the others draw the same tables)
    targets = [
        analysis.summary_json(str(results)),
        analysis.figure_file(str(results), "fig2", "png"),
        results / "atlas" / "index.html",
        results / "paper_check.html",
        results / "model_card.json",
    ]
    smk(*targets, "--cores", "2", "--configfile", REPO / "demo-timm.yaml", cfg, timeout=900)
    return results


def test_demo_timm_runs_end_to_end(timm_run):
    summary = json.loads(open(analysis.summary_json(str(timm_run))).read())
    weights = summary["weights"]
    assert (weights["arch"], weights["kind"], weights["timm_model"]) == ("timm:resnet18", "random", "resnet18.a1_in1k")
    assert (
        weights["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
        and weights["preprocessing"]["interpolation"] == "bicubic"
    )
    assert summary["blocks"]["2.1"]["layers"] == LAYERS
    table, _ = read_table(analysis.metric_table_csv(str(timm_run), "2.1", "fv"))
    assert list(table["channel"]) == [0] and set(table["weights"]) == {
        "timm:resnet18 RANDOM WEIGHTS (random:0, not pretrained)"
    }
    card = json.loads((timm_run / "model_card.json").read_text())
    assert card["arch"] == "timm:resnet18" and card["blocks"] == ["2.1"]
    assert (timm_run / "atlas" / "2.1" / "index.html").is_file() and (timm_run / "paper_check.html").is_file()
    assert (timm_run / "figures" / "fig2_mix_histograms.png").stat().st_size > 0


def test_a_timm_run_compares_with_a_torchvision_run_of_its_architecture(timm_run, tmp_path):
    from helpers.hand_tables import write_hand_tables

    fv, imnet = write_hand_tables(tmp_path / "tv", weights=RANDOM)
    analysis.build_summary(fv, imnet, analysis.summary_json(str(tmp_path / "tv")), fig34_blocks=["2.1"])
    out = compare_runs(
        {"torchvision": str(tmp_path / "tv"), "timm": str(timm_run)}, str(tmp_path / "cmp"), depth_bins=4
    )
    blocks, _ = read_table(out["blocks"])
    rows = {(r.model, r.block): r for r in blocks.itertuples()}
    # the same architecture: block 2.1 sits at the same relative depth (index 3 of 8) in both
    assert rows[("timm", "2.1")].relative_depth == rows[("torchvision", "2.1")].relative_depth == 3 / 8
    assert (rows[("timm", "2.1")].family, rows[("torchvision", "2.1")].family) == ("timm ResNet", "ResNet")
    assert (rows[("timm", "2.1")].arch, rows[("timm", "2.1")].channels) == ("timm:resnet18", 1)
