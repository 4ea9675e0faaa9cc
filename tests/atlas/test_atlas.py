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

from helpers import REPO
from helpers.browser import (
    assert_shown_equals,
    column_values,
    file_url,
    unit_numbers,
    visible_channels,
    wait_for_images,
)
from helpers.hand_tables import LAYERS, PRETRAINED, write_hand_tables
from helpers.synthetic import fabricated_study, write_fv_chunk
from resstream.analysis import metrics
from resstream.analysis.summary import AnalysisError, build_summary, read_table, write_table
from resstream.atlas import content, load, render
from resstream.atlas import write as atlas
from resstream.atlas.histogram import mix_histogram
from resstream.base.code_fingerprint import fingerprinted_files
from resstream.workflow.config import validate_config
from resstream.workflow.plan import StudyPlan

SETTINGS = {"channel_fvs": ["O"], "fv_px": 160, "top9_px": 240, "row_px": 48, "jpeg_quality": 85}
BLOCKS = ("2.0", "2.1")
NO_CHANNEL_FV = ("2.1", 3)  # this unit's channel FV is left out: its page must say so


def exemplar_dirs(results) -> list[str]:
    """The per-layer exemplar folders (what an atlas_block job is given)."""
    return sorted(str(p) for p in (results / "activations" / "exemplars").glob("*"))


def build_atlas(results, fv_tables, imagenet_tables, out, settings=SETTINGS, blocks=BLOCKS):
    """The atlas as its jobs build it: each block's folder, then the index from the summary that
    resstream.analysis.summary.build_summary writes from the same tables."""
    fv_dirs = sorted(str(p) for p in (results / "fv").glob("*/*"))
    chfv_dirs = sorted(str(p) for p in (results / "chfv" / "fv").glob("*/*"))
    for block in blocks:
        atlas.write_block(
            block,
            fv_tables[block],
            imagenet_tables[block],
            LAYERS[block],
            fv_dirs,
            chfv_dirs,
            exemplar_dirs(results),
            str(out / block),
            settings,
        )
    build_summary(
        {b: fv_tables[b] for b in blocks}, {b: imagenet_tables[b] for b in blocks}, str(results / "summary.json")
    )
    return write_index(results, fv_tables, out, blocks)


def write_index(results, fv_tables, out, blocks=BLOCKS):
    return atlas.write_index(
        list(blocks),
        [fv_tables[b] for b in blocks],
        str(results / "summary.json"),
        str(out / "index.html"),
        str(out / "atlas.css"),
        str(out / "atlas.js"),
    )


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
    assert content.fmt_value(float("nan")) == "—" and content.raw_value(float("nan")) == "nan"
    assert content.fmt_value(np.float64(0.123456789)) == "0.123457"
    assert content.raw_value(np.float64(0.123456789)) == "0.123456789"
    assert content.fmt_value(np.bool_(True)) == "yes" and content.raw_value(False) == "false"
    assert content.fmt_value(np.int64(7)) == "7" and content.fmt_value("mix") == "mix"


def histogram_svg(values, mix_factor=1.5) -> str:
    """The histogram as the index draws it: the numbers of mix_histogram through the template macro."""
    macros = render.environment().get_template("macros.html.j2").module
    return str(macros.histogram(mix_histogram(values, mix_factor)))


def test_mix_histogram_counts_equal_numpy():
    values = [0.1, 0.2, 0.3, 0.9, 1.0, 1.1, 4.9, 5.0, float("nan")]
    expected, edges = np.histogram([v for v in values if not math.isnan(v)], bins=metrics.HIST_BINS)
    hist = mix_histogram(values, 1.5)
    assert [b.count for b in hist.bars] == expected.tolist() and hist.values == 8
    assert [(b.low, b.high) for b in hist.bars] == list(zip(edges[:-1], edges[1:]))
    svg = histogram_svg(values)
    assert (
        svg.startswith('<svg class="hist" width="240" height="90"') and 'aria-label="histogram of M, 8 channels"' in svg
    )
    counts = [int(n) for n in re.findall(r"<title>M [^:]+: (\d+)</title>", svg)]
    assert counts == expected.tolist() and sum(counts) == 8
    # the tallest bars (2 values: [0, .25), [1, 1.25), [4.75, 5]) span 90 - 14 px, one value half of that
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([0-9.]+)"', svg)]
    assert heights[0] == heights[4] == heights[19] == 76.0 and heights[1] == 38.0 and heights[2] == 0.0
    # bars take the spectrum colour of their bin: [0, .25) overwrite, [1, 1.25) mix, [4.75, 5] skip
    fills = re.findall(r'fill="(#[0-9a-f]{6})"', svg)
    assert fills[0] == content.GROUP_COLORS["overwrite"] and fills[4] == content.GROUP_COLORS["mix"]
    assert fills[-1] == content.GROUP_COLORS["skip"]


def test_histogram_colours_follow_the_tables_mix_factor():
    # bin [1.5, 1.75): skip with f = 1.5, mix with f = 2 (1/2 < 1.625 < 2)
    def bar_colour(f):
        return re.findall(r'fill="(#[0-9a-f]{6})"', histogram_svg([1.6], mix_factor=f))[6]

    assert bar_colour(1.5) == content.GROUP_COLORS["skip"] and bar_colour(2.0) == content.GROUP_COLORS["mix"]


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
            cells = re.findall(
                r'<td data-key="([^"]+)" data-stimulus="([^"]+)" data-value="([^"]*)"[^>]*>([^<]*)</td>', page
            )
            assert len(cells) == 2 * len(content.UNIT_NUMBERS)
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
        assert 'id="random-weights-banner"' in text and content.RANDOM_BANNER in text, path
        assert "resnet18 RANDOM WEIGHTS (random:0, not pretrained)" in text and "aa" * 32 in text, path


def test_pretrained_atlas_has_no_banner_but_names_the_weights(tmp_path, hand_atlas):
    results, _out, _fv, _imnet, _summary = hand_atlas
    fv, imnet = write_hand_tables(tmp_path, weights=PRETRAINED, blocks=("2.1",))
    # pictures from the hand atlas, tables with pretrained weights
    atlas.write_block(
        "2.1",
        fv["2.1"],
        imnet["2.1"],
        LAYERS["2.1"],
        sorted(str(p) for p in (results / "fv").glob("*/*")),
        [],
        exemplar_dirs(results),
        str(tmp_path / "atlas" / "2.1"),
        SETTINGS,
    )
    text = (tmp_path / "atlas" / "2.1" / "unit0001.html").read_text()
    assert "random-weights-banner" not in text and "RANDOM WEIGHTS" not in text
    assert PRETRAINED["label"] in text and "bb" * 32 in text


def test_index_counts_equal_the_tables(hand_atlas):
    _results, out, fv, imnet, summary = hand_atlas
    for block in BLOCKS:
        table = read_table(fv[block])[0]
        groups = table["mix_group"].value_counts().to_dict()
        assert summary[block]["groups"] == {g: groups.get(g, 0) for g in content.GROUPS}
        # hand table: mix 0, 5; overwrite 1; skip 2, 3; none 4 (dead); all criteria 0, 5; no mix 0, 1, 3, 4, 5
        assert summary[block]["groups"] == {"overwrite": 1, "mix": 2, "skip": 2, "none": 1}
        assert summary[block]["scale_invariant"]["all"] == 2 and summary[block]["scale_invariant"]["nomix"] == 5
        assert summary[block]["scale_invariant"]["imagenet_all"] == int(read_table(imnet[block])[0]["pass_all"].sum())
    index = (out / "index.html").read_text()
    assert index.count('class="card"') == 2 and 'href="2.0/index.html"' in index


def index_cards(index_html: str) -> dict[str, dict]:
    """Per card of the index page: its channel count, group chips and scale-invariance counts."""
    cards = {}
    for block, body in re.findall(
        r'<section class="card" data-block="([^"]+)">(.*?)</section>', index_html, flags=re.S
    ):
        cards[block] = {
            "channels": int(re.search(r"<p>(\d+) channels", body).group(1)),
            "groups": {
                g: int(n) for g, n in re.findall(r'<span class="chip g-\w+" data-group="(\w+)">\w+ (\d+)</span>', body)
            },
            "scale_invariant": {k: int(n) for k, n in re.findall(r'<b data-key="(\w+)">(\d+)</b>', body)},
        }
    return cards


def test_index_numbers_equal_the_summary(hand_atlas):
    results, out, _fv, _imnet, _summary = hand_atlas
    summary = json.loads((results / "summary.json").read_text())
    cards = index_cards((out / "index.html").read_text())
    assert list(cards) == list(BLOCKS)
    for block, card in cards.items():
        entry = summary["blocks"][block]
        n = entry["channels"]
        assert card["channels"] == n == 6
        counts = entry["spectrum_counts"]
        assert card["groups"] == {
            "overwrite": counts["overwrite"],
            "mix": counts["mix"],
            "skip": counts["skip"],
            "none": counts["no_mix_ratio"],
        }
        counted = entry["scale_invariant_counts"]
        assert card["scale_invariant"] == {
            "all": counted["fv_all_criteria"],
            "nomix": counted["fv_without_mix_criterion"],
            "imagenet_all": counted["imagenet_all_criteria"],
        }
        assert card["scale_invariant"]["all"] == 2 and card["scale_invariant"]["nomix"] == 5  # the hand table's


def test_index_takes_its_counts_from_the_summary_and_refuses_a_stale_one(tmp_path, hand_atlas):
    results, _out, fv, _imnet, _summary = hand_atlas
    summary = json.loads((results / "summary.json").read_text())
    entry = summary["blocks"]["2.1"]
    entry["spectrum_counts"]["mix"] = 4  # not what the table says: the index must show the summary's
    entry["scale_invariant_counts"]["fv_all_criteria"] = 3
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    shown = write_index(tmp_path, fv, tmp_path)
    card = index_cards((tmp_path / "index.html").read_text())["2.1"]
    assert card["groups"]["mix"] == shown["2.1"]["groups"]["mix"] == 4
    assert card["scale_invariant"]["all"] == shown["2.1"]["scale_invariant"]["all"] == 3

    entry["channels"] = 7  # a summary made before the table changed
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(
        load.AtlasError,
        match=r"summary.json counts 7 channels in block 2.1, .*2.1/fv_table.csv holds 6: "
        r"the summary is older than the table. Fix: rerun the summary",
    ):
        write_index(tmp_path, fv, tmp_path)


def test_index_refuses_a_table_without_its_mix_factor(tmp_path):
    """The atlas's share of tests/analysis/test_scorecard.py's refusal of such a table."""
    fv, imnet = write_hand_tables(tmp_path, blocks=BLOCKS)
    build_summary(fv, imnet, str(tmp_path / "summary.json"))
    table, meta = read_table(fv["2.0"])
    write_table(table, fv["2.0"], {k: v for k, v in meta.items() if k != "analysis"})
    with pytest.raises(
        AnalysisError,
        match=r"2.0/fv_table.csv does not record the analysis.mix_factor .* "
        r"Fix: rebuild the table",
    ):
        write_index(tmp_path, fv, tmp_path)
    assert not (tmp_path / "index.html").exists()


def test_labels_and_names_are_escaped_in_every_page(tmp_path, hand_atlas):
    results, _out, _fv, _imnet, _summary = hand_atlas
    hostile = '<script>alert("x")</script> R&D'
    weights = dict(PRETRAINED, label=f"resnet18 {hostile}", source=hostile)
    fv, imnet = write_hand_tables(tmp_path, weights=weights, blocks=("2.1",))
    table, meta = read_table(fv["2.1"])
    table.loc[table["channel"] == 2, "status"] = hostile  # a channel's label in the block table and on its page
    write_table(table, fv["2.1"], meta)
    block = "2.1&<blink>"
    layers = dict(LAYERS["2.1"], B="layer2.1.bn2<i>&")
    out = tmp_path / "atlas"
    atlas.write_block(
        block, fv["2.1"], imnet["2.1"], layers, [], [], exemplar_dirs(results), str(out / block), SETTINGS
    )
    build_summary({block: fv["2.1"]}, {block: imnet["2.1"]}, str(tmp_path / "summary.json"))
    atlas.write_index(
        [block],
        [fv["2.1"]],
        str(tmp_path / "summary.json"),
        str(out / "index.html"),
        str(out / "atlas.css"),
        str(out / "atlas.js"),
    )
    for path in [out / "index.html"] + sorted((out / block).glob("*.html")):
        text = path.read_text()
        assert "<script>alert" not in text and "<blink>" not in text and "<i>&" not in text, path
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; R&amp;D" in text, path  # the weights line
        assert "2.1&amp;&lt;blink&gt;" in text, path
    assert (
        'data-value="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; R&amp;D"'
        in (out / block / "index.html").read_text()
    )
    assert "layer2.1.bn2&lt;i&gt;&amp;" in (out / block / "unit0002.html").read_text()


def test_templates_and_static_files_are_in_the_atlas_jobs_code_fingerprint():
    # an edit of a template or of atlas.css / atlas.js must rerun the atlas jobs like an edit of their Python
    files = fingerprinted_files(str(REPO / "scripts" / "atlas.py"))
    shipped = sorted(str(p.relative_to(REPO / "resstream")) for p in (REPO / "resstream" / "atlas").glob("*/*.*"))
    assert shipped == sorted(
        [f"atlas/templates/{t}" for t in render.TEMPLATES] + [f"atlas/static/{s}" for s in render.STATIC]
    )
    assert set(shipped) <= set(files), sorted(set(shipped) - set(files))


def test_an_existing_block_folder_is_never_overwritten(hand_atlas):
    results, out, fv, imnet, _summary = hand_atlas
    before = {p: p.read_bytes() for p in (out / "2.0").rglob("*") if p.is_file()}
    with pytest.raises(load.AtlasError, match="already holds atlas pages"):
        atlas.write_block(
            "2.0", fv["2.0"], imnet["2.0"], LAYERS["2.0"], [], [], exemplar_dirs(results), str(out / "2.0"), SETTINGS
        )
    assert {p: p.read_bytes() for p in (out / "2.0").rglob("*") if p.is_file()} == before
    assert not list(out.glob("2.0.partial-*"))


def test_channel_fv_chunks_cover_only_the_roles_asked_for():
    cfg = validate_config(
        {
            "study": {"blocks": ["1.1", "2.0", "2.1"], "channels": [0], "channels_by_block": {"2.1": [0, 70]}},
            "atlas": {"channel_fvs": ["O"]},
        }
    )
    study = StudyPlan(cfg)
    # the O layers only (2.0's I is its downsample branch, 2.1's I = 2.0's O is not asked for as I)
    assert study.channel_fv_layers() == ["layer1.1.prerelu_out", "layer2.0.prerelu_out", "layer2.1.prerelu_out"]
    assert [c.name for c in study.channel_fv_chunks("layer2.1.prerelu_out")] == ["c0000-0063", "c0064-0127"]
    assert [c.channels for c in study.channel_fv_chunks("layer1.1.prerelu_out")] == [(0,)]  # 1.1 has 64 channels
    off = StudyPlan(
        validate_config({"study": {"blocks": ["1.1"]}, "atlas": {"enabled": False}})
    )  # no atlas, no channel FVs
    assert off.channel_fv_layers() == [] and off.channel_fv_roles == ()
    both = StudyPlan(validate_config({"study": {"blocks": ["1.1", "2.1"]}, "atlas": {"channel_fvs": ["I", "B"]}}))
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
