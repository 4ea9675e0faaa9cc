"""The lesion section of a block's atlas page (resstream/atlas/lesions.py) from hand-made lesion
rows run through the ablation stage's own tables: the numbers shown equal the rows' (means and
standard errors computed here), the mix-class rows are the block's, the figure link resolves; no
section for a block the stage did not lesion, nor without the stage."""

import os
import re

import numpy as np
import pandas as pd
import pytest

from helpers.hand_tables import LAYERS, RANDOM, write_hand_tables
from resstream.ablation.figure import ratio_table
from resstream.ablation.mix_table import mix_class_table
from resstream.analysis.summary import write_table
from resstream.atlas import write as atlas

SETTINGS = {"channel_fvs": ["O"], "fv_px": 160, "top9_px": 240, "row_px": 48, "jpeg_quality": 85}
COLUMNS = ["block", "set", "kind", "path", "trial", "scale", "fill", "accuracy", "kl", "n", "kept"]
RANDOM_ACC = {1.0: [50.0, 40.0, 45.0], 1.3: [30.0, 20.0, 10.0]}  # three random trials per scale
TARGET_ACC = {1.0: 44.0, 1.3: 12.0}


def lesion_rows() -> pd.DataFrame:
    """Block 2.1: plain network, a pass_all set at O and skip / overwrite classes on I and B (scale 1);
    each with three random trials (trial 1 of pass_all dropped by the filter)."""
    rows = [("2.1", "none", "", "", -1, s, "", 60.0, 0.0, 10, True) for s in TARGET_ACC]
    for s, target in TARGET_ACC.items():
        rows.append(("2.1", "pass_all", "mean", "O", -1, s, "", target, 0.5, 10, True))
        rows += [
            ("2.1", "random:pass_all", "mean", "O", t, s, "", a, 0.3, 10, t != 1) for t, a in enumerate(RANDOM_ACC[s])
        ]
    for cls, kl in (("skip", {"I": 0.9, "B": 0.2}), ("overwrite", {"I": 0.1, "B": 0.8})):
        for path in ("I", "B"):
            rows.append(("2.1", cls, "mean", path, -1, 1.0, "", 55.0, kl[path], 10, True))
            rows += [("2.1", "random:" + cls, "mean", path, t, 1.0, "", 57.0, 0.15, 10, True) for t in range(2)]
    return pd.DataFrame(rows, columns=COLUMNS)


@pytest.fixture(scope="module")
def lesion_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lesions")
    df = lesion_rows()
    files = {
        "ratios": str(tmp / "ablation" / "lesion_ratios.csv"),
        "mix": str(tmp / "ablation" / "mix_classes.csv"),
        "figure": str(tmp / "ablation" / "ablation.png"),
    }
    write_table(ratio_table(df), files["ratios"], {"weights": RANDOM})
    write_table(mix_class_table(df, {("2.1", "skip"): 4, ("2.1", "overwrite"): 7}), files["mix"], {"weights": RANDOM})
    open(files["figure"], "wb").close()
    return tmp, files


def block_page(tmp, block, lesion_files) -> str:
    fv, imnet = write_hand_tables(tmp / block, blocks=(block,))
    out = tmp / "atlas" / block
    atlas.write_block(
        block, fv[block], imnet[block], LAYERS[block], [], [], [], str(out), SETTINGS, lesion_files=lesion_files
    )
    return (out / "index.html").read_text()


def table_rows(page: str, table_id: str) -> list[dict]:
    """{data-key: data-value} per row of the table with ``table_id``."""
    body = re.search(rf'<table class="lesions" id="{table_id}">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [
        dict(re.findall(r'<td data-key="([^"]+)" data-value="([^"]*)"', tr))
        for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def test_lesioned_block_page_shows_its_lesions_against_the_random_sets(lesion_files):
    tmp, files = lesion_files
    page = block_page(tmp, "2.1", files)
    rows = {(r["set"], r["path"], float(r["scale"])): r for r in table_rows(page, "lesion-ratios")}
    assert set(rows) == {
        ("pass_all", "O", 1.0),
        ("pass_all", "O", 1.3),
        ("skip", "I", 1.0),
        ("skip", "B", 1.0),
        ("overwrite", "I", 1.0),
        ("overwrite", "B", 1.0),
    }
    for scale, target in TARGET_ACC.items():
        kept = np.array([a for t, a in enumerate(RANDOM_ACC[scale]) if t != 1])
        r = rows[("pass_all", "O", scale)]
        assert float(r["accuracy"]) == target and int(r["trials"]) == 2 and int(r["n"]) == 10
        assert float(r["random_accuracy"]) == pytest.approx(kept.mean())
        assert float(r["random_se"]) == pytest.approx(kept.std(ddof=1) / np.sqrt(2))
        ratios = target / kept
        assert float(r["ratio"]) == pytest.approx(ratios.mean())
        assert float(r["se"]) == pytest.approx(ratios.std(ddof=1) / np.sqrt(2))
    mix = {(r["mix_class"], r["path"]): r for r in table_rows(page, "lesion-mix-classes")}
    assert set(mix) == {("skip", "I"), ("skip", "B"), ("overwrite", "I"), ("overwrite", "B")}
    assert mix[("skip", "I")]["agrees"] == "yes" and mix[("overwrite", "B")]["agrees"] == "yes"
    assert float(mix[("skip", "I")]["kl_excess"]) == pytest.approx(0.9 - 0.15)
    assert float(mix[("overwrite", "B")]["accuracy_drop"]) == pytest.approx(60.0 - 55.0)
    assert int(mix[("overwrite", "I")]["channels"]) == 7
    link = re.search(r'<section class="lesions" id="lesions">.*?<a href="([^"]+)">figure</a>', page, re.S).group(1)
    assert os.path.exists(os.path.join(tmp / "atlas" / "2.1", link)) and link == "../../ablation/ablation.png"


def test_no_section_for_a_block_not_lesioned_or_without_the_stage(lesion_files):
    tmp, files = lesion_files
    assert 'id="lesions"' not in block_page(tmp, "2.0", files)  # the stage lesioned 2.1 only
    assert 'id="lesions"' not in block_page(tmp / "off", "2.1", None)
