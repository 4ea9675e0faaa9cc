"""The ablation job's library call on hand-made metric tables and an activations file: sets read
from the tables, mean constants from the file's layer of each path, the mix-class table."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from helpers.configs import tiny_config
from helpers.hand_tables import write_hand_tables
from helpers.sample_images import make_image_folder
from helpers.synthetic import write_activations
from resstream.ablation.lesion import Lesion, lesioned
from resstream.ablation.scales import Scale, scale_transform
from resstream.ablation.stage import every_nth_class, run_ablation
from resstream.activations.store import read_layer
from resstream.analysis.summary import metric_table_csv
from resstream.base.paths import activations_h5
from resstream.data.image_folder import load_rgb, scan_image_folder
from resstream.model.blocks import block_lookup
from resstream.model.walk import model_blocks
from resstream.model.weights import model_param
from resstream.workflow.config import validate_config
from resstream.workflow.plan import StudyPlan

SETTINGS = {
    "blocks": ["2.0", "2.1"],
    "sets": ["skip", "overwrite"],
    "table": "fv",
    "channels": {},
    "kinds": ["mean"],
    "paths": ["I", "B"],
    "scales": [1.0],
    "down_fills": [0],
    "trials": 2,
    "seed": 0,
    "margin": 100.0,
    "dataset": "",
    "class_stride": 1,
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, random_model):
    tmp = tmp_path_factory.mktemp("stage")
    data = make_image_folder(tmp / "data", n_classes=3)
    config = validate_config(
        tiny_config(tmp / "results", data, study={"blocks": ["2.0", "2.1"], "channels": [0, 1, 2, 3, 4, 5]})
    )
    write_hand_tables(config["results"], blocks=("2.0", "2.1"))
    write_activations(config, *random_model, n_images=3, grids=False)
    study = StudyPlan(config)
    out = tmp / "results" / "ablation"
    tables = {b: metric_table_csv(config["results"], b, "fv") for b in SETTINGS["blocks"]}
    df = run_ablation(
        str(out / "ablation.csv"),
        str(out / "mix_classes.csv"),
        str(out / "ablation.png"),
        str(out / "ablation.pdf"),
        model=model_param(config["model"]),
        dataset=str(data),
        activations=activations_h5(config["results"]),
        tables=tables,
        layers={b: study.block_layers(b) for b in SETTINGS["blocks"]},
        settings=SETTINGS,
        device="cpu",
        batch_size=2,
        workers=0,
    )
    return config, study, data, out, df


def test_mix_class_table_has_both_paths_of_both_classes(finished):
    *_, out, df = finished
    mix = pd.read_csv(out / "mix_classes.csv", keep_default_na=False)
    assert len(mix) == 2 * 2 * 2  # blocks x classes x paths
    assert set(mix[(mix["mix_class"] == "skip") & (mix["path"] == "I")]["agrees"]) <= {"yes", "no"}
    assert set(mix[(mix["mix_class"] == "skip") & (mix["path"] == "B")]["agrees"]) == {"n/a"}
    assert (mix[mix["mix_class"] == "skip"]["channels"] == 2).all()  # hand table: ch2, ch3 are skip
    assert (out / "ablation.png").exists() and len(df) == 1 + 2 * 2 * 2 * 3


def test_mean_constants_come_from_the_activation_layer_of_the_path(finished, random_model):
    """Block 2.1, skip set (channels 2, 3 of the hand table), path I: the KL written equals a
    hand computation with constants = mean over images of max(I's centre activation, 0)."""
    config, study, data, _, df = finished
    model = random_model[0]
    acts = read_layer(activations_h5(config["results"]), study.block_layers("2.1")["I"])
    values = tuple(float(np.maximum(acts[:, c].astype(np.float64), 0).mean()) for c in (2, 3))
    lesion = Lesion("2.1", "I", (2, 3), values)
    info = block_lookup(model_blocks(model), "2.1")
    kl = 0.0
    records = scan_image_folder(data)
    for rec in records:
        x = scale_transform(Scale(1.0))(load_rgb(data / rec.path))[None]
        with torch.no_grad():
            plain = F.log_softmax(model(x).double(), 1)
            with lesioned(model, info, lesion):
                les = F.log_softmax(model(x).double(), 1)
        kl += float((plain.exp() * (plain - les)).sum())
    row = df[(df["block"] == "2.1") & (df["set"] == "skip") & (df["path"] == "I")].iloc[0]
    assert row["kl"] == pytest.approx(kl / len(records), rel=1e-4)
    assert row["kl"] > 0


def test_every_nth_class_keeps_the_images_of_classes_0_n_2n(tmp_path):
    data = make_image_folder(tmp_path / "data", n_classes=5)
    records = scan_image_folder(str(data))
    kept = every_nth_class(records, 2)
    assert sorted({r.class_id for r in kept}) == [0, 2, 4]
    assert len(kept) == sum(r.class_id in (0, 2, 4) for r in records) and every_nth_class(records, 1) == records
