"""The atlas a real (tiny) demo run writes, driven in headless Chromium from the file system: the
index, a block table sorted by M and filtered to scale-invariant channels, a unit page whose images
load and whose numbers equal the metric tables.  Keeps a screenshot of the unit page in
``test-artifacts/atlas_unit_page.png`` (or ``$RESSTREAM_TEST_ARTIFACTS``).

The run is the session's small run (tests/helpers/runs.py: blocks 1.1 and 2.1, channels 0-2, 2 FV
steps, 24 images, random weights); read only here.  (The atlas of a downsampling block, 2.0, is
checked on hand-made tables in tests/atlas/test_atlas.py.)"""

import math
import os
from pathlib import Path

import pandas as pd

from helpers import REPO
from helpers.browser import (
    assert_shown_equals,
    column_values,
    file_url,
    unit_numbers,
    visible_channels,
    wait_for_images,
)
from helpers.configs import changed_config_file
from helpers.runs import SMALL_STUDY
from helpers.workflow import planned_jobs
from resstream.analysis.summary import metric_table_csv, read_table
from resstream.atlas import content as atlas

BLOCKS = SMALL_STUDY["blocks"]
CHANNELS = SMALL_STUDY["channels"]
ARTIFACTS = Path(os.environ.get("RESSTREAM_TEST_ARTIFACTS", REPO / "test-artifacts"))


def fv_table(results, block) -> pd.DataFrame:
    return read_table(metric_table_csv(str(results), block, "fv"))[0]


def test_index_names_blocks_weights_and_counts(shared_run, chromium):
    results = shared_run.results
    chromium.get(file_url(results / "atlas" / "index.html"))
    assert chromium.title == "resstream unit atlas"
    assert atlas.RANDOM_BANNER in chromium.find_element("id", "random-weights-banner").text
    assert "resnet18 RANDOM WEIGHTS (random:0, not pretrained)" in chromium.find_element("id", "weights").text
    cards = chromium.find_elements("css selector", "section.card")
    assert [c.get_attribute("data-block") for c in cards] == BLOCKS
    for card, block in zip(cards, BLOCKS):
        table = fv_table(results, block)
        for chip in card.find_elements("css selector", ".chip[data-group]"):
            group = chip.get_attribute("data-group")
            assert chip.text == f"{group} {int((table['mix_group'] == group).sum())}"
        assert card.find_element("css selector", 'b[data-key="all"]').text == str(int(table["pass_all"].sum()))
        assert card.find_element("css selector", 'b[data-key="nomix"]').text == str(int(table["pass_nomix"].sum()))
        assert len(card.find_elements("css selector", "svg.hist rect")) == 20


def test_block_table_sorts_by_m_and_filters_scale_invariant(shared_run, chromium):
    results = shared_run.results
    chromium.get(file_url(results / "atlas" / "index.html"))
    chromium.find_element("link text", "Block 1.1").click()
    assert chromium.current_url.endswith("/atlas/1.1/index.html")
    table = fv_table(results, "1.1")
    m = dict(zip(table["channel"].astype(int), table["M"]))
    assert visible_channels(chromium) == CHANNELS
    ascending = sorted(m, key=lambda c: (math.isnan(m[c]), m[c] if not math.isnan(m[c]) else 0, c))
    header = chromium.find_element("css selector", 'th[data-sort="M"]')
    header.click()
    assert visible_channels(chromium) == ascending
    shown = [float(v) for v in column_values(chromium, "M") if v != "nan"]
    assert shown == sorted(shown) == sorted(v for v in m.values() if not math.isnan(v))
    header.click()
    finite = [c for c in ascending if not math.isnan(m[c])]
    assert visible_channels(chromium) == finite[::-1] + [c for c in ascending if math.isnan(m[c])]
    select = chromium.find_element("id", "scale-filter")
    for option, column in (("pass_all", "pass_all"), ("pass_nomix", "pass_nomix")):
        select.find_element("css selector", f'option[value="{option}"]').click()
        assert sorted(visible_channels(chromium)) == sorted(table.loc[table[column], "channel"].astype(int))
        n = int(table[column].sum())
        assert chromium.find_element("id", "shown-count").text == f"{n} of {len(CHANNELS)} channels shown"


def test_unit_page_images_load_and_numbers_equal_the_csv(shared_run, chromium):
    results = shared_run.results
    chromium.get(file_url(results / "atlas" / "1.1" / "index.html"))
    chromium.find_element("css selector", 'td[data-key="channel"] a[href="unit0001.html"]').click()
    assert chromium.current_url.endswith("/atlas/1.1/unit0001.html")
    images = wait_for_images(chromium)
    assert len(images) == 3 + 3 + 1, images  # centre FVs of I, B, O, their top-9 grids, the channel FV of O
    assert all(i["complete"] and i["width"] > 0 for i in images), images
    assert "random-weights-banner" in chromium.page_source

    numbers = unit_numbers(chromium)
    for stimulus in ("fv", "imagenet"):
        row = read_table(metric_table_csv(str(results), "1.1", stimulus))[0].set_index("channel").loc[1]
        for key, _meaning in atlas.UNIT_NUMBERS:
            assert_shown_equals(numbers[(stimulus, key)], row[key], f"1.1 ch1 {stimulus} {key}")
    # the first of O's top-9 images is the first one its layer's exemplars.csv lists
    exemplars = pd.read_csv(results / "activations" / "exemplars" / "layer1.1.prerelu_out" / "exemplars.csv")
    first = exemplars[
        (exemplars["layer"] == "layer1.1.prerelu_out") & (exemplars["channel"] == 1) & (exemplars["rank"] == 0)
    ]
    listed = chromium.find_elements("css selector", "#role-O details li")
    assert len(listed) == 9 and listed[0].get_attribute("textContent").startswith(first["path"].iloc[0])

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "atlas_unit_page.png"
    chromium.set_window_size(1300, 1500)
    assert chromium.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    chromium.find_element("id", "next").click()
    assert chromium.current_url.endswith("/atlas/1.1/unit0002.html")
    chromium.find_element("id", "prev").click()
    chromium.find_element("id", "prev").click()
    assert chromium.current_url.endswith("/atlas/1.1/unit0000.html")
    assert not chromium.find_elements("id", "prev")


def test_atlas_thumbnails_are_small(shared_run):
    results = shared_run.results
    images = list((results / "atlas").rglob("*.jpg"))
    assert len(images) == len(BLOCKS) * len(CHANNELS) * 8  # per unit: 3 FVs, 3 top-9, 1 channel FV, 1 row
    full = sum(p.stat().st_size for p in (results / "activations" / "exemplars").rglob("unit*.png"))
    thumbs = sum(p.stat().st_size for p in images if "_top9_" in p.name)
    assert thumbs < full / 3, (thumbs, full)


def test_changing_one_block_rebuilds_only_its_atlas_folder(shared_run, tmp_path):
    target = "results/atlas/index.html"
    assert planned_jobs(target, "--configfile", "demo.yaml", shared_run.config_file, cwd=shared_run.root) == {}
    changed = changed_config_file(shared_run.config_file, tmp_path, {"fv": {"overrides": {"2.1": {"steps": 3}}}})
    plan = planned_jobs(target, "--configfile", "demo.yaml", changed, cwd=shared_run.root)
    assert plan["atlas_block"] == [{"block": "2.1"}], plan
    assert sorted(j["layer"] for j in plan["fv_channel_chunk"]) == ["layer2.1.prerelu_out"]
    assert "atlas_index" in plan and "exemplar_grids" not in plan
