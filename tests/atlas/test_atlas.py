"""The unit atlas from hand-made tables (known groups and pass flags) and fabricated pictures:
files, thumbnails, numbers, banner, refusals; then the same pages in headless Chromium (sorting and
filtering checked against the hand table's worked values)."""

import html
import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from helpers.browser import (
    assert_shown_equals, column_values, file_url, unit_numbers, visible_channels,
    wait_for_images,
)
from helpers.hand_tables import LAYERS, PRETRAINED, write_hand_tables
from resstream.atlas import build as atlas
from resstream.analysis import metrics
from resstream.analysis.summary import read_table
from resstream.workflow.plan import Study
from resstream.workflow.config import validate_config
from helpers.synthetic import fabricated_study, write_fv_chunk

SETTINGS = {"channel_fvs": ["O"], "fv_px": 160, "top9_px": 240, "row_px": 48, "jpeg_quality": 85}
BLOCKS = ("2.0", "2.1")
NO_CHANNEL_FV = ("2.1", 3)  # this unit's channel FV is left out: its page must say so


def exemplar_dirs(results) -> list[str]:
    """The per-layer exemplar folders (what an atlas_block job is given)."""
    return sorted(str(p) for p in (results / "activations" / "exemplars").glob("*"))


def build_atlas(results, fv_tables, imagenet_tables, out, settings=SETTINGS, blocks=BLOCKS):
    fv_dirs = sorted(str(p) for p in (results / "fv").glob("*/*"))
    chfv_dirs = sorted(str(p) for p in (results / "chfv" / "fv").glob("*/*"))
    for block in blocks:
        atlas.write_block(block, fv_tables[block], imagenet_tables[block], LAYERS[block], fv_dirs, chfv_dirs,
                          exemplar_dirs(results), str(out / block), settings)
    return atlas.write_index(list(blocks), [fv_tables[b] for b in blocks], [imagenet_tables[b] for b in blocks],
                             str(out / "index.html"), str(out / "atlas.css"), str(out / "atlas.js"))


@pytest.fixture(scope="module")
def hand_atlas(tmp_path_factory, random_model, sample_dir):
    """Blocks 2.0 and 2.1, channels 0-5: hand tables (random weights), fabricated FVs, exemplar
    grids from real forwards of 10 sample images, channel FVs of O but one."""
    _, identity = random_model
    results = tmp_path_factory.mktemp("atlas")
    fabricated_study(results, sample_dir, random_model, BLOCKS, range(6), n_images=10)
    for block in BLOCKS:
        channels = [c for c in range(6) if (block, c) != NO_CHANNEL_FV]
        write_fv_chunk(results / "chfv", LAYERS[block]["O"], "c0000-0063", channels, identity.as_dict(), seed=7)
    fv, imnet = write_hand_tables(results, blocks=BLOCKS)
    out = results / "atlas"
    summary = build_atlas(results, fv, imnet, out)
    return results, out, fv, imnet, summary


def test_formatting_of_values():
    assert atlas.fmt_value(float("nan")) == "—" and atlas.raw_value(float("nan")) == "nan"
    assert atlas.fmt_value(np.float64(0.123456789)) == "0.123457"
    assert atlas.raw_value(np.float64(0.123456789)) == "0.123456789"
    assert atlas.fmt_value(np.bool_(True)) == "yes" and atlas.raw_value(False) == "false"
    assert atlas.fmt_value(np.int64(7)) == "7" and atlas.fmt_value("mix") == "mix"


def test_mix_histogram_counts_equal_numpy():
    values = [0.1, 0.2, 0.3, 0.9, 1.0, 1.1, 4.9, 5.0, float("nan")]
    svg = atlas.mix_histogram_svg(values)
    counts = [int(n) for n in re.findall(r"<title>M [^:]+: (\d+)</title>", svg)]
    expected, _ = np.histogram([v for v in values if not math.isnan(v)], bins=metrics.HIST_BINS)
    assert counts == expected.tolist() and sum(counts) == 8
    # bars take the spectrum colour of their bin: [0, .25) overwrite, [1, 1.25) mix, [4.75, 5] skip
    fills = re.findall(r'fill="(#[0-9a-f]{6})"', svg)
    assert fills[0] == atlas.GROUP_COLORS["overwrite"] and fills[4] == atlas.GROUP_COLORS["mix"]
    assert fills[-1] == atlas.GROUP_COLORS["skip"]


def test_histogram_colours_follow_the_tables_mix_factor():
    # bin [1.5, 1.75): skip with f = 1.5, mix with f = 2 (1/2 < 1.625 < 2)
    def bar_colour(f):
        return re.findall(r'fill="(#[0-9a-f]{6})"', atlas.mix_histogram_svg([1.6], mix_factor=f))[6]

    assert bar_colour(1.5) == atlas.GROUP_COLORS["skip"] and bar_colour(2.0) == atlas.GROUP_COLORS["mix"]


def test_block_folder_holds_every_page_and_small_thumbnails(hand_atlas):
    _results, out, _fv, _imnet, _summary = hand_atlas
    for block in BLOCKS:
        d = out / block
        assert sorted(p.name for p in d.glob("unit*.html")) == [f"unit{c:04d}.html" for c in range(6)]
        assert (d / "index.html").exists()
        for path in (d / "img").iterdir():
            with Image.open(path) as img:
                assert img.format == "JPEG"
                if path.name.startswith("row_"):
                    assert img.size == (SETTINGS["row_px"],) * 2, path.name
                elif "_top9_" in path.name:  # the fabricated grids are 168 px: never enlarged
                    assert img.size == (168, 168), path.name
                else:  # FVs: 224 px PNGs -> fv_px
                    assert img.size == (SETTINGS["fv_px"],) * 2, path.name
        # per unit: centre FV and top-9 of I, B, O, the channel FV of O (one left out), a row thumbnail
        names = {p.name for p in (d / "img").iterdir()}
        expected_chfv = 5 if block == NO_CHANNEL_FV[0] else 6
        assert len(names) == 6 * (3 + 3 + 1) + expected_chfv
        assert not list(out.glob(f"{block}.partial-*"))


def test_unit_page_numbers_equal_the_tables(hand_atlas):
    _results, out, fv, imnet, _summary = hand_atlas
    for block in BLOCKS:
        tables = {"fv": read_table(fv[block])[0], "imagenet": read_table(imnet[block])[0]}
        for c in range(6):
            page = (out / block / f"unit{c:04d}.html").read_text()
            cells = re.findall(r'<td data-key="([^"]+)" data-stimulus="([^"]+)" data-value="([^"]*)"[^>]*>([^<]*)</td>', page)
            assert len(cells) == 2 * len(atlas.UNIT_NUMBERS)
            for key, stim, raw, shown in cells:
                raw, shown = html.unescape(raw), html.unescape(shown)
                value = tables[stim].set_index("channel").loc[c, key]
                assert_shown_equals(shown, value, f"{block} ch{c} {stim} {key}")
                if isinstance(value, float) and not math.isnan(value):
                    assert float(raw) == value  # data-value holds the table's number exactly


def test_unit_pages_link_neighbours_and_show_missing_pictures(hand_atlas):
    _results, out, _fv, _imnet, _summary = hand_atlas
    first = (out / "2.0" / "unit0000.html").read_text()
    assert 'id="next" rel="next" href="unit0001.html"' in first and 'id="prev"' not in first
    last = (out / "2.0" / "unit0005.html").read_text()
    assert 'id="prev" rel="prev" href="unit0004.html"' in last and 'id="next"' not in last
    block, c = NO_CHANNEL_FV
    page = (out / block / f"unit{c:04d}.html").read_text()
    assert page.count("not available") == 1
    assert page.count("atlas.channel_fvs lacks") == 2  # I and B were not asked for
    record = json.loads((out / block / "atlas_block.json").read_text())
    assert record["missing_pictures"] == [f"channel FV O {LAYERS[block]['O']} {c}"]
    # full-size pictures are linked relative to the page, and exist
    for href in re.findall(r'<a href="(\.\./[^"]+\.png)">', page):
        assert (out / block / href).resolve().exists(), href


def test_every_page_names_the_weights_and_carries_the_random_banner(hand_atlas):
    _results, out, _fv, _imnet, _summary = hand_atlas
    pages = [out / "index.html"] + sorted(out.glob("*/*.html"))
    assert len(pages) == 1 + 2 * 7
    for path in pages:
        text = path.read_text()
        assert 'id="random-weights-banner"' in text and atlas.RANDOM_BANNER in text, path
        assert "resnet18 RANDOM WEIGHTS (random:0, not pretrained)" in text and "aa" * 32 in text, path


def test_pretrained_atlas_has_no_banner_but_names_the_weights(tmp_path, hand_atlas):
    results, _out, _fv, _imnet, _summary = hand_atlas
    fv, imnet = write_hand_tables(tmp_path, weights=PRETRAINED, blocks=("2.1",))
    # pictures from the hand atlas, tables with pretrained weights
    atlas.write_block("2.1", fv["2.1"], imnet["2.1"], LAYERS["2.1"], sorted(str(p) for p in (results / "fv").glob("*/*")), [],
                      exemplar_dirs(results), str(tmp_path / "atlas" / "2.1"), SETTINGS)
    text = (tmp_path / "atlas" / "2.1" / "unit0001.html").read_text()
    assert "random-weights-banner" not in text and "RANDOM WEIGHTS" not in text
    assert PRETRAINED["label"] in text and "bb" * 32 in text


def test_index_counts_equal_the_tables(hand_atlas):
    _results, out, fv, imnet, summary = hand_atlas
    for block in BLOCKS:
        table = read_table(fv[block])[0]
        groups = table["mix_group"].value_counts().to_dict()
        assert summary[block]["groups"] == {g: groups.get(g, 0) for g in atlas.GROUPS}
        # hand table: mix 0, 5; overwrite 1; skip 2, 3; none 4 (dead); all criteria 0, 5; no mix 0, 1, 3, 4, 5
        assert summary[block]["groups"] == {"overwrite": 1, "mix": 2, "skip": 2, "none": 1}
        assert summary[block]["scale_invariant"]["all"] == 2 and summary[block]["scale_invariant"]["nomix"] == 5
        assert summary[block]["scale_invariant"]["imagenet_all"] == int(read_table(imnet[block])[0]["pass_all"].sum())
    index = (out / "index.html").read_text()
    assert index.count('class="card"') == 2 and 'href="2.0/index.html"' in index


def test_an_existing_block_folder_is_never_overwritten(hand_atlas):
    results, out, fv, imnet, _summary = hand_atlas
    before = {p: p.read_bytes() for p in (out / "2.0").rglob("*") if p.is_file()}
    with pytest.raises(atlas.AtlasError, match="already holds atlas pages"):
        atlas.write_block("2.0", fv["2.0"], imnet["2.0"], LAYERS["2.0"], [], [], exemplar_dirs(results),
                          str(out / "2.0"), SETTINGS)
    assert {p: p.read_bytes() for p in (out / "2.0").rglob("*") if p.is_file()} == before
    assert not list(out.glob("2.0.partial-*"))


def test_channel_fv_chunks_cover_only_the_roles_asked_for():
    cfg = validate_config({"study": {"blocks": ["1.1", "2.0", "2.1"], "channels": [0], "channels_by_block": {"2.1": [0, 70]}},
                           "atlas": {"channel_fvs": ["O"]}})
    study = Study(cfg)
    # the O layers only (2.0's I is its downsample branch, 2.1's I = 2.0's O is not asked for as I)
    assert study.channel_fv_layers() == ["layer1.1.prerelu_out", "layer2.0.prerelu_out", "layer2.1.prerelu_out"]
    assert [c.name for c in study.channel_fv_chunks("layer2.1.prerelu_out")] == ["c0000-0063", "c0064-0127"]
    assert [c.channels for c in study.channel_fv_chunks("layer1.1.prerelu_out")] == [(0,)]  # 1.1 has 64 channels
    off = Study(validate_config({"study": {"blocks": ["1.1"]}, "atlas": {"enabled": False}}))  # no atlas, no channel FVs
    assert off.channel_fv_layers() == [] and off.channel_fv_roles == ()
    both = Study(validate_config({"study": {"blocks": ["1.1", "2.1"]}, "atlas": {"channel_fvs": ["I", "B"]}}))
    assert both.channel_fv_layers() == ["layer1.0.prerelu_out", "layer1.1.bn2", "layer2.0.prerelu_out", "layer2.1.bn2"]
    assert both.block_layers("2.1") == {"I": "layer2.0.prerelu_out", "B": "layer2.1.bn2", "O": "layer2.1.prerelu_out"}


# --- in the browser ------------------------------------------------------------------------------


def test_block_table_sorts_and_filters_in_chromium(hand_atlas, chromium):
    _results, out, fv, _imnet, _summary = hand_atlas
    table = read_table(fv["2.1"])[0]
    chromium.get(file_url(out / "2.1" / "index.html"))
    assert visible_channels(chromium) == list(range(6))
    assert chromium.find_element("id", "shown-count").text == "6 of 6 channels shown"
    header = chromium.find_element("css selector", 'th[data-sort="M"]')
    header.click()
    m = dict(zip(table["channel"], table["M"]))
    finite = sorted((c for c in m if not math.isnan(m[c])), key=lambda c: (m[c], c))
    assert visible_channels(chromium) == finite + [4]  # channel 4 is dead: no M, listed last
    header.click()
    assert visible_channels(chromium) == sorted(finite, key=lambda c: (-m[c], c)) + [4]
    chromium.find_element("css selector", 'th[data-sort="SM"]').click()
    sm = [float(v) for v in column_values(chromium, "SM") if v != "nan"]
    assert sm == sorted(sm) and len(sm) == table["SM"].notna().sum()

    select = chromium.find_element("id", "scale-filter")
    select.find_element("css selector", 'option[value="pass_all"]').click()
    assert sorted(visible_channels(chromium)) == [0, 5] == sorted(table.loc[table["pass_all"], "channel"])
    select.find_element("css selector", 'option[value="pass_nomix"]').click()
    assert sorted(visible_channels(chromium)) == [0, 1, 3, 4, 5]
    chromium.find_element("css selector", '.group-filter[value="skip"]').click()  # hide skip (2, 3)
    assert sorted(visible_channels(chromium)) == [0, 1, 4, 5]
    assert chromium.find_element("id", "shown-count").text == "4 of 6 channels shown"
    select.find_element("css selector", 'option[value="any"]').click()
    assert sorted(visible_channels(chromium)) == [0, 1, 4, 5]


def test_unit_page_images_load_in_chromium(hand_atlas, chromium):
    _results, out, _fv, _imnet, _summary = hand_atlas
    chromium.get(file_url(out / "2.0" / "unit0002.html"))
    images = wait_for_images(chromium)
    assert len(images) == 3 + 3 + 1  # centre FVs, top-9 grids, the channel FV of O
    assert all(i["width"] > 0 for i in images), images
    assert images[0]["width"] == SETTINGS["fv_px"]
    chromium.find_element("id", "next").click()
    assert chromium.current_url.endswith("/2.0/unit0003.html")
    assert unit_numbers(chromium)[("fv", "mix_group")] == "skip"
