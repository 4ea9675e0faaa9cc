"""The dictionary stage end to end (one tiny workflow run: 10 images the test makes, block 1.1, a
tiny dictionary) and the feature-M figure."""

import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.configs import tiny_config_file
from helpers.sample_images import make_image_folder
from helpers.workflow import one_line, smk
from resstream.base.errors import ConfigError
from resstream.dictionary.figure import dictionary_summary, feature_m_figure
from resstream.dictionary.stage import _split
from resstream.dictionary.train import load_dictionary

TINY_DICTIONARY = {
    "enabled": True,
    "expansion": 1,
    "k": 4,
    "aux_k": 8,
    "dead_tokens": 128,
    "tokens": 256,
    "positions_per_image": 16,
    "images_per_refill": 4,
    "batch_size": 64,
    "heldout_images": 2,
    "exemplars": 3,
    "feature_pages": 3,
    "page_channels": 64,
    "threads": 1,
}


def test_dictionary_stage_end_to_end(tmp_path):
    data = make_image_folder(tmp_path / "data", n_classes=10, seed=0)
    config = tiny_config_file(tmp_path, data, dictionary=TINY_DICTIONARY)
    out = tmp_path / "results" / "dictionary" / "1.1"
    pictures = tmp_path / "results" / "dictionary_pictures" / "1.1"
    atlas = tmp_path / "results" / "atlas"
    smk(out, pictures, atlas / "1.1", atlas / "dictionary" / "1.1", "--cores", "1", "--configfile", "demo.yaml", config)

    model, cfg, identity = load_dictionary(str(out / "dictionary.safetensors"))
    assert cfg["dims"] == {"I": 64, "B": 64, "O": 64} and cfg["n_latents"] == 128 and cfg["training_images"] == 8
    # the weights' identity: a dictionary is only valid for the network it was trained on
    assert identity["source"] == "random:0" and len(identity["state_dict_sha256"]) == 64
    quality = json.loads((out / "quality.json").read_text())
    # 2 held-out images x 56 x 56 positions of block 1.1
    assert quality["tokens"] == 2 * 56 * 56 and 0 < quality["l0"] <= 4
    assert set(quality["fve"]) == {"I", "B", "O"} and all(v <= 1 for v in quality["fve"].values())
    features = json.loads((out / "features.json").read_text())["features"]
    assert len(features) == 128
    norms_i = model.W_dec["I"].detach().norm(dim=1).numpy()
    norms_b = model.W_dec["B"].detach().norm(dim=1).numpy()
    assert np.allclose([f["M"] for f in features], norms_i / norms_b, rtol=1e-5)
    live = [f for f in features if f["firing"] > 0]
    assert live and all(1 <= len(f["top_images"]) <= 3 for f in live)
    assert np.mean([f["firing"] == 0 for f in features]) == pytest.approx(quality["dead_share"])
    needed = json.loads((out / "channels.json").read_text())["features_per_O_channel"]
    assert len(needed) == 64 and all(0 <= n <= 128 for n in needed)
    log = (tmp_path / "results" / "logs" / "dictionary" / "1.1.log").read_text()
    # the checkpoint (beside the folder, so that a killed job's folder can go) is gone once done
    assert "ETA" in log and not (tmp_path / "results" / "dictionary" / "1.1.checkpoint.pt").exists()
    assert sorted(p.name for p in (tmp_path / "results" / "dictionary").iterdir()) == ["1.1"]
    # feature pictures: the 3 most often firing features, each with a 224 px FV and exemplar grids
    top3 = sorted(sorted(live, key=lambda f: (-f["firing"], f["feature"]))[:3], key=lambda f: f["feature"])
    record = json.loads((pictures / "pictures.json").read_text())
    assert [f["feature"] for f in record["features"]] == [f["feature"] for f in top3]
    assert record["settings"]["steps"] == 2 and record["weights"]["source"] == "random:0"
    for f, features_record in zip(record["features"], top3):
        with Image.open(pictures / f"feature{f['feature']:05d}.png") as im:
            assert im.size == (224, 224) and im.mode == "RGB"
        # one patch per top image, inside the 224 px view, around the peak cell (4 px per cell in layer1)
        assert len(f["patch_boxes"]) == len(features_record["top_images"])
        for (y0, y1, x0, x1), top in zip(f["patch_boxes"], features_record["top_images"]):
            assert 0 <= y0 <= 4 * top["cell"][0] < y1 <= 224 and 0 <= x0 <= 4 * top["cell"][1] < x1 <= 224
        for grid in ("top", "patches"):
            with Image.open(pictures / f"feature{f['feature']:05d}_{grid}.png") as im:
                assert im.mode == "RGB"
        o = model.W_dec["O"][f["feature"]].detach().numpy()
        assert [c for c, _ in f["writes_most"]] == list(np.argsort(-np.abs(o), kind="stable"))
    _check_feature_pages(atlas, record["features"], {f["feature"]: f for f in features})


class _Page(HTMLParser):
    """A page's links, images and numbers (``data-key`` -> ``data-value`` of its cells)."""

    def __init__(self, path):
        super().__init__()
        self.links, self.images, self.values = [], [], {}
        self.feed(path.read_text())

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a":
            self.links.append(a["href"])
        elif tag == "img":
            self.images.append(a["src"])
        elif tag == "td" and "data-key" in a:
            self.values[a["data-key"]] = a["data-value"]


def _check_feature_pages(atlas, pictured, science):
    """Every pictured feature has a page linked from the block page and from the unit page of each
    studied channel its decoder writes most; every link and image resolves; the numbers are the
    science tables' (features.json)."""
    block_page = _Page(atlas / "1.1" / "index.html")
    for f in pictured:
        page_path = atlas / "dictionary" / "1.1" / f"feature{f['feature']:05d}.html"
        assert f"../dictionary/1.1/{page_path.name}" in block_page.links
        page = _Page(page_path)
        for href in page.links + page.images:
            if href != "../../index.html":  # the atlas's index: rule atlas_index, not run here
                assert (page_path.parent / href).resolve().exists(), href
        assert len(page.images) == 3  # the FV, the top images, the patches
        truth = science[f["feature"]]
        assert float(page.values["M"]) == pytest.approx(truth["M"], rel=1e-9)
        for t in "IBO":
            assert float(page.values[f"decoder_norm_{t}"]) == pytest.approx(truth["decoder_norm"][t], rel=1e-9)
        assert float(page.values["firing"]) == pytest.approx(truth["firing"], rel=1e-9)
        # it writes all 64 channels (dictionary.page_channels 64); only studied channel 0 has a unit page
        assert [h for h in page.links if "unit" in h] == ["../../1.1/unit0000.html"]
        assert f"../dictionary/1.1/{page_path.name}" in _Page(atlas / "1.1" / "unit0000.html").links
    assert "../dictionary/1.1/index.html" in block_page.links and (atlas / "dictionary" / "1.1" / "index.html").exists()


def test_feature_m_figure_draws_every_block(tmp_path):
    blocks = ["1.1", "2.0", "2.1"]
    features, channels = {}, {}
    for i, b in enumerate(blocks):
        features[b] = tmp_path / f"{b}.json"
        features[b].write_text(json.dumps({"features": [{"M_clamped": m, "firing": 0.1} for m in (0.2, 1.0, 5.0 - i)]}))
        channels[b] = tmp_path / f"{b}.csv"
        pd.DataFrame({"M": [0.5, 2.0, np.nan]}).to_csv(channels[b], index=False)
    png = feature_m_figure(
        {b: str(p) for b, p in features.items()}, {b: str(p) for b, p in channels.items()}, str(tmp_path / "fig.png")
    )
    with Image.open(png) as im:
        assert im.size[0] > 3 * im.size[1] / 2  # three panels side by side


def test_k_beyond_the_latents_is_one_line_before_any_job(tmp_path):
    data = make_image_folder(tmp_path / "data", n_classes=2, seed=0)
    config = tiny_config_file(tmp_path, data, dictionary={**TINY_DICTIONARY, "k": 200})
    proc = smk("-n", "--cores", "1", "--configfile", "demo.yaml", config, check=False)
    assert proc.returncode != 0
    assert one_line(proc) == (
        "resstream: dictionary.k: 200 is more than the 128 latents of block 1.1 "
        "(dictionary.expansion 1 x 2 input(s) x 64 channels); lower it or raise dictionary.expansion"
    )


def test_heldout_images_leaving_no_training_image_names_the_key():
    with pytest.raises(ConfigError) as err:
        _split(list(range(5)), heldout=5, seed=0)
    assert str(err.value) == (
        "dictionary.heldout_images: 5 held-out images leave none of the dataset's 5 for training; set it below 5"
    )
    train, heldout = _split(list(range(5)), heldout=2, seed=0)
    assert len(heldout) == 2 and sorted(train + heldout) == list(range(5))


def test_summary_compares_scale_invariant_channels_with_the_others(tmp_path):
    folder = tmp_path / "1.1"
    folder.mkdir()
    (folder / "quality.json").write_text(json.dumps({"l0": 4.0, "dead_share": 0.5}))
    (folder / "channels.json").write_text(json.dumps({"share": 0.9, "features_per_O_channel": [1, 2, 9, 7, 5]}))
    table = tmp_path / "fv_table.csv"
    # studied channels 0, 2, 3, 4; channels 0 and 4 pass both scale criteria
    pd.DataFrame({"channel": [0, 2, 3, 4], "pass_all": [True, False, False, True]}).to_csv(table, index=False)
    summary = dictionary_summary({"1.1": str(folder)}, {"1.1": str(table)}, str(tmp_path / "s.json"))
    assert summary["1.1"]["features_per_channel_median"] == {"scale_invariant": 3.0, "other": 8.0}
    assert summary["1.1"]["scale_invariant_channels"] == 2 and summary["1.1"]["l0"] == 4.0
    assert json.loads((tmp_path / "s.json").read_text()) == summary


def test_stage_scope_trains_one_crosscoder_per_network_stage(tmp_path):
    from helpers.configs import tiny_config
    from resstream.dictionary.stage import dictionary_stage_group
    from resstream.model.weights import model_param
    from resstream.workflow.config import validate_config

    data = make_image_folder(tmp_path / "data", n_classes=6, seed=0)
    config = validate_config(tiny_config(tmp_path / "results", data, dictionary={**TINY_DICTIONARY, "scope": "stage"}))
    out = tmp_path / "stage2"
    dictionary_stage_group(
        str(out),
        model=model_param(config["model"]),
        dataset=str(data),
        on_bad_image="fail",
        stage_blocks=["2.0", "2.1"],
        o_relu="pre",
        section=config["dictionary"],
        device="cpu",
    )
    model, cfg, _ = load_dictionary(str(out / "dictionary.safetensors"))
    # one encoder on 2.0's I and B; decoders into 2.0's I, B, O and 2.1's B and O (2.1's I is 2.0's O)
    assert cfg["inputs"] == ["2_0:I", "2_0:B"] and cfg["targets"] == ["2_0:I", "2_0:B", "2_0:O", "2_1:B", "2_1:O"]
    assert cfg["n_latents"] == 256 and set(cfg["dims"].values()) == {128}
    quality = json.loads((out / "quality.json").read_text())
    assert set(quality["fve"]) == set(cfg["targets"]) and quality["tokens"] == 2 * 28 * 28
    norms = {t: model.W_dec[t].detach().norm(dim=1).numpy() for t in cfg["targets"]}
    features = json.loads((out / "features.json").read_text())["features"]
    # each block's M from its own I and B decoders: 2.1's I is the stream 2.0 writes
    assert np.allclose([f["blocks"]["2.0"]["M"] for f in features], norms["2_0:I"] / norms["2_0:B"], rtol=1e-5)
    assert np.allclose([f["blocks"]["2.1"]["M"] for f in features], norms["2_0:O"] / norms["2_1:B"], rtol=1e-5)
    needed = json.loads((out / "channels.json").read_text())["features_per_O_channel"]
    assert set(needed) == {"2.0", "2.1"} and all(len(v) == 128 for v in needed.values())


def test_stage_scope_plans_one_job_per_network_stage(tmp_path):
    data = make_image_folder(tmp_path / "data", n_classes=4, seed=0)
    config = tiny_config_file(
        tmp_path,
        data,
        dictionary={**TINY_DICTIONARY, "scope": "stage"},
        study={"blocks": ["1.1", "2.0", "2.1"], "channels": [0]},
    )
    proc = smk(
        tmp_path / "results" / "dictionary" / "stage2",
        tmp_path / "results" / "dictionary" / "stage1",
        "-n",
        "--cores",
        "1",
        "--configfile",
        "demo.yaml",
        config,
    )
    stats = proc.stdout.split("Job stats:")[1].split("\n\n")[0]
    counts = {row.split()[0]: int(row.split()[1]) for row in stats.splitlines()[3:] if row.strip()}
    # one crosscoder per network stage, after the image manifest its tokens are read from
    assert counts == {"dataset_manifest": 1, "dictionary_stage": 2, "total": 3}, stats
