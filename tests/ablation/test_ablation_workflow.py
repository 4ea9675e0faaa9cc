"""The ablation stage end to end in Snakemake on a tiny labelled folder the test makes (1 block,
2 scales, 2 trials), and its pre-flight refusals (one line naming the key)."""

import re
import time

import pandas as pd
import pytest
from PIL import Image

from helpers.configs import changed_config_file, tiny_config_file
from helpers.sample_images import make_image_folder
from helpers.workflow import one_line, smk
from resstream.base.tables import read_table

ABLATION = {
    "enabled": True,
    "blocks": ["1.1"],
    "sets": ["list"],
    "channels": {"1.1": [0, 5, 9]},
    "scales": [1.0, 1.2],
    "trials": 2,
    "batch_size": 4,
    "workers": 0,
    "threads": 1,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("data"), n_classes=3)


def test_stage_writes_table_and_figure(data, tmp_path):
    config = tiny_config_file(tmp_path, data, ablation=ABLATION)
    csv = tmp_path / "results" / "ablation" / "ablation.csv"
    start = time.monotonic()
    smk(csv, "--cores", "2", "--configfile", "demo.yaml", config)
    print(f"ablation workflow: {time.monotonic() - start:.1f} s")
    df = pd.read_csv(csv, keep_default_na=False)
    assert list(df.columns) == [
        "block",
        "set",
        "kind",
        "path",
        "trial",
        "scale",
        "fill",
        "accuracy",
        "kl",
        "n",
        "kept",
        "weights",
    ]
    assert len(df) == 2 * (1 + 1 + 2)  # per scale: plain, target, 2 random trials
    assert (df["n"] == 3).all() and df["weights"].str.contains("RANDOM WEIGHTS").all()
    plain = df[df["set"] == "none"]
    assert sorted(plain["scale"]) == [1.0, 1.2] and (plain["kl"] == 0).all()
    lesioned = df[df["set"] != "none"]
    assert (lesioned["kl"] > 0).all() and set(lesioned["trial"]) == {-1, 0, 1}
    assert set(lesioned["set"]) == {"list", "random:list"} and set(lesioned["path"]) == {"O"}
    assert (tmp_path / "results" / "ablation" / "ablation.json").exists()
    mix = pd.read_csv(tmp_path / "results" / "ablation" / "mix_classes.csv")
    assert mix.empty and "agrees" in mix.columns  # no mix-class set was lesioned
    ratios = pd.read_csv(tmp_path / "results" / "ablation" / "lesion_ratios.csv", keep_default_na=False)
    assert len(ratios) == 2 and list(ratios["scale"]) == [1.0, 1.2]  # the target, per scale
    for r in ratios.itertuples():
        same = lesioned[(lesioned["scale"] == r.scale) & (lesioned["set"] == "random:list") & lesioned["kept"]]
        target = lesioned[(lesioned["scale"] == r.scale) & (lesioned["set"] == "list")]["accuracy"].iloc[0]
        assert r.accuracy == target and r.trials == len(same)
        assert r.random_accuracy == pytest.approx(same["accuracy"].mean())
    with Image.open(tmp_path / "results" / "ablation" / "ablation.png") as img:
        assert img.size[0] > 300


def section_rows(page: str) -> list[dict]:
    """{data-key: data-value} per row of the atlas block page's lesion table."""
    body = re.search(r'<table class="lesions" id="lesion-ratios">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [
        dict(re.findall(r'<td data-key="([^"]+)" data-value="([^"]*)"', tr))
        for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def test_atlas_page_and_scorecard_show_the_lesions_only_with_the_stage(data, tmp_path):
    """Stage on: block 1.1's atlas page has the lesion section with ablation.csv's numbers, the
    scorecard the follow-up rows (not judged: random weights); stage off: neither (the atlas job
    and the scorecard rerun without the stage's files)."""
    results = tmp_path / "results"
    page, scorecard = results / "atlas" / "1.1" / "index.html", results / "paper_check.csv"
    targets = (results / "atlas" / "1.1", scorecard)
    on = tiny_config_file(tmp_path, data, ablation=ABLATION)
    smk(*targets, "--cores", "2", "--configfile", "demo.yaml", on)
    df = pd.read_csv(results / "ablation" / "ablation.csv", keep_default_na=False)
    rows = section_rows(page.read_text())
    assert [float(r["scale"]) for r in rows] == [1.0, 1.2] and {r["set"] for r in rows} == {"list"}
    for r in rows:
        at = df[df["scale"] == float(r["scale"])]
        random = at[(at["set"] == "random:list") & at["kept"]]["accuracy"]
        assert float(r["accuracy"]) == at[at["set"] == "list"]["accuracy"].iloc[0]
        assert float(r["random_accuracy"]) == pytest.approx(random.mean()) and int(r["trials"]) == len(random)
        assert int(r["n"]) == 3
    assert '<a href="../../ablation/ablation.png">figure</a>' in page.read_text()
    card = read_table(str(scorecard))[0]
    followup = card[card["claim_id"].str.startswith("followup_")]
    assert len(followup) == 2 and set(followup["verdict"]) == {"not judged (random weights)"}

    off = changed_config_file(on, tmp_path, {"ablation": {"enabled": False}})
    smk(*targets, "--cores", "2", "--configfile", "demo.yaml", off)
    assert 'id="lesions"' not in page.read_text()
    card = read_table(str(scorecard))[0]
    assert not card["claim_id"].str.startswith("followup_").any()


@pytest.mark.parametrize(
    "change, line",
    [
        (
            {"blocks": ["2.1"]},
            "resstream: ablation.blocks: block 2.1 is not studied (study.blocks: 1.1); "
            "its tables and activations give the sets and means. Fix: add it to study.blocks or remove "
            "it from ablation.blocks",
        ),
        (
            {"channels": {"1.1": [70]}},
            "resstream: ablation.channels.1.1: channel(s) [70] out of range; block 1.1 has channels 0..63",
        ),
        (
            {"channels": {}},
            "resstream: ablation.channels: block 1.1 has no list, but ablation.sets has "
            "list. Fix: set ablation.channels.1.1 to its channels, e.g. [0, 5, 9]",
        ),
    ],
)
def test_bad_ablation_settings_stop_with_one_line(data, tmp_path, change, line):
    config = tiny_config_file(tmp_path, data, ablation={**ABLATION, **change})
    proc = smk("-n", "--cores", "1", "--configfile", "demo.yaml", config, check=False)
    assert proc.returncode != 0
    assert one_line(proc) == line
