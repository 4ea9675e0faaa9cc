"""The reproduction scorecard on hand-made tables (tests/helpers/paper_tables.py): tables that agree with
every claim, with none, and with some; not-studied blocks and channels; both o_relu readings of A.3;
titles for random and pretrained weights; the files, the atlas index and the workflow rule."""

import json
import re

import pytest

import helpers.paper_tables as pt
from resstream.analysis import scorecard as sc
from resstream.analysis.summary import build_summary, read_table
from resstream.atlas import write as atlas

N_ROWS = len(sc.load_claims()["claims"]) + sum(1 for c in sc.load_claims()["claims"] if c["check"] == "fig7")


def run_scorecard(tmp_path, blocks, **kw):
    fv, imagenet = pt.write_tables(tmp_path, blocks, **kw)
    out = sc.scorecard_outputs(str(tmp_path))
    return sc.write_scorecard(fv, imagenet, out), out


def row(df, claim_id, o_relu=None):
    rows = df[(df["claim_id"] == claim_id) & ((df["o_relu"] == o_relu) if o_relu else True)]
    assert len(rows) == 1, (claim_id, o_relu, len(rows))
    return rows.iloc[0]


def test_tables_that_agree_reproduce_every_claim(tmp_path):
    df, out = run_scorecard(tmp_path, pt.agreeing())
    assert len(df) == N_ROWS == 63
    assert sc.verdict_counts(df) == {sc.REPRODUCED: 63, sc.PARTLY: 0, sc.NOT_REPRODUCED: 0, sc.NOT_APPLICABLE: 0}
    assert row(df, "fig7_2.1", "pre")["overlap"] == "9 of 9 channels found, precision 1"
    assert row(df, "fig7_3.0", "post")["this_run"] == "none"
    assert row(df, "fig6_1.1")["this_run"].startswith("top 3 by SM: 19, 46")
    # every row names its figure and the paper's sentence
    assert df["sentence"].str.len().min() > 20 and set(df["figure"]) >= {"Fig 1A", "Fig 2", "Fig 3", "Fig 4 top", "Fig 5", "Fig 8"}


def test_tables_that_contradict_reproduce_none(tmp_path):
    df, _ = run_scorecard(tmp_path, pt.contrary())
    assert sc.verdict_counts(df) == {sc.REPRODUCED: 0, sc.PARTLY: 0, sc.NOT_REPRODUCED: 63, sc.NOT_APPLICABLE: 0}
    # the paper lists no Fig 7 channel for 3.0; this run does, and with the paper's sign test
    # (raw deltas) a negative denominator lets channels with m < 0 pass: the consistency row says so
    assert row(df, "fig7_3.0", "pre")["this_run"] != "none"
    assert re.search(r"6 violation\(s\): 3\.0 ch \d+ \(FV: m = -", row(df, "check_fig7_criteria")["this_run"])
    assert re.match(r"rho = 0\.\d+, p = ", row(df, "fig3_2.1_gamma")["this_run"])  # positive


def test_tables_that_partly_agree(tmp_path):
    df, _ = run_scorecard(tmp_path, pt.mixed())
    assert sc.verdict_counts(df) == {sc.REPRODUCED: 60, sc.PARTLY: 3, sc.NOT_REPRODUCED: 0, sc.NOT_APPLICABLE: 0}
    for o_relu in ("pre", "post"):
        r = row(df, "fig7_3.1", o_relu)
        assert r["verdict"] == sc.PARTLY and r["overlap"] == "6 of 9 channels found, precision 0.5"
    r = row(df, "fig8_2.0")
    assert r["verdict"] == sc.PARTLY and r["overlap"] == "1 of 3 channels found" and r["this_run"].endswith("42, 0, 1")
    assert row(df, "check_fig1b_in_fig7")["verdict"] == sc.REPRODUCED  # 178, 215, 25 are among the 6 kept


def test_blocks_and_channels_not_studied_are_not_applicable(tmp_path):
    """Blocks 2.1 and 3.1 only, and 3.1 without channels 200-255 (215 of Fig 1B, 204 and 200 of Fig 7)."""
    blocks = pt.agreeing()
    df, _ = run_scorecard(tmp_path, {"2.1": blocks["2.1"], "3.1": blocks["3.1"]},
                          edit=lambda b, s, raw: raw.drop(raw.index[raw["channel"] >= 200], inplace=True) if b == "3.1" else None)
    assert row(df, "fig1a_overwrite")["verdict"] == sc.NOT_APPLICABLE
    assert row(df, "fig1a_overwrite")["this_run"] == "block 1.1 not studied"
    assert row(df, "fig7_4.1", "post")["verdict"] == sc.NOT_APPLICABLE  # both o_relu rows, not studied
    assert row(df, "fig2_simple_less_skewed")["verdict"] == sc.NOT_APPLICABLE  # no downsample block
    r = row(df, "fig7_3.1", "pre")  # 6 of the 9 studied: all found, but the claim is not fully checked
    assert r["verdict"] == sc.PARTLY and r["overlap"] == "6 of 6 channels found, precision 1; not studied: 215, 204, 200"
    r = row(df, "fig1b_scale_invariant")
    assert r["verdict"] == sc.PARTLY and r["overlap"] == "2 of 2 channels found; not studied: 215"
    assert row(df, "fig7_2.1", "pre")["verdict"] == sc.REPRODUCED
    r = row(df, "fig8_3.1")  # 246 not studied
    assert r["verdict"] == sc.PARTLY and r["overlap"] == "2 of 2 channels found; not studied: 246"


def test_fig7_for_both_o_relu_readings(tmp_path):
    """Channel 108 of 2.1: its top-9 images' mean pre-ReLU O(V_I) is negative (M = 0 by rule, outside
    the mix window), the post-ReLU mean positive (M = 1.2): pre loses it from Fig 7, post keeps it."""
    def pre_negative(run_o_relu):
        def edit(block, stimulus, raw):
            if block == "2.1" and stimulus == "imagenet":
                at = raw["channel"] == 108
                raw.loc[at, "out_in_pre"] = -0.5
                if run_o_relu == "pre":  # the run's own columns hold its reading
                    raw.loc[at, "out_in"] = -0.5
        return edit

    for run_o_relu in ("pre", "post"):
        df, _ = run_scorecard(tmp_path / run_o_relu, pt.agreeing(), o_relu=run_o_relu, edit=pre_negative(run_o_relu))
        pre, post = row(df, "fig7_2.1", "pre"), row(df, "fig7_2.1", "post")
        assert post["verdict"] == sc.REPRODUCED and "108" in post["this_run"]
        assert pre["verdict"] == sc.PARTLY and pre["overlap"].startswith("8 of 9") and "108" not in pre["this_run"]
        assert list(df.loc[df["claim_id"] == "fig7_2.1", "o_relu"]) == [run_o_relu, "post" if run_o_relu == "pre" else "pre"]
        assert "this run's o_relu" in df.loc[df["claim_id"] == "fig7_2.1", "claim"].iloc[0]


def test_files_and_titles_random_and_pretrained(tmp_path):
    df, out = run_scorecard(tmp_path / "random", pt.mixed())
    md = open(out["md"]).read()
    assert md.splitlines()[0] == "# Reproduction scorecard — RANDOM WEIGHTS: the comparison with the paper is meaningless"
    assert "| Fig 7 | 3.1 |" in md and "6 of 9 channels found, precision 0.5" in md and "Verdicts: 60 reproduced, 3 partly" in md
    table, meta = read_table(out["csv"])
    assert list(table.columns) == [*sc.COLUMNS, "weights"] and len(table) == len(df)
    assert meta["title"].endswith(sc.MEANINGLESS) and meta["verdicts"][sc.PARTLY] == 3
    page = open(out["html"]).read()
    assert sc.MEANINGLESS in page and page.count('data-verdict="partly"') == 3 + 1  # 3 rows + the count chip

    _, out = run_scorecard(tmp_path / "pretrained", pt.agreeing(), weights=pt.PRETRAINED)
    assert open(out["md"]).readline().strip() == "# Reproduction scorecard"
    assert sc.MEANINGLESS not in open(out["html"]).read()


def test_html_is_escaped(tmp_path):
    df, out = run_scorecard(tmp_path, pt.agreeing())
    df.loc[0, "this_run"] = "<script>alert(1)</script>"
    html = sc.html_fragment(df, json.load(open(out["csv"].replace(".csv", ".json"))))
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_atlas_index_shows_the_scorecard(tmp_path):
    fv, imagenet = pt.write_tables(tmp_path, pt.mixed())
    out = sc.scorecard_outputs(str(tmp_path))
    sc.write_scorecard(fv, imagenet, out)
    blocks = list(fv)
    build_summary(fv, imagenet, str(tmp_path / "summary.json"))
    atlas.write_index(blocks, [fv[b] for b in blocks], str(tmp_path / "summary.json"), str(tmp_path / "index.html"),
                      str(tmp_path / "atlas.css"), str(tmp_path / "atlas.js"), scorecard_csv=out["csv"])
    page = (tmp_path / "index.html").read_text()
    assert 'id="paper-check"' in page and sc.MEANINGLESS in page
    assert len(re.findall(r'<tr data-claim="[^"]+" data-verdict="partly"', page)) == 3
    assert len(re.findall(r"<tr data-claim=", page)) == N_ROWS
    assert ".v-partly" in (tmp_path / "atlas.css").read_text()


@pytest.mark.parametrize("claim", sc.load_claims()["claims"], ids=lambda c: c["id"])
def test_every_claim_is_checkable_and_sourced(claim):
    assert claim["check"] in sc.CHECKS
    assert claim["figure"].startswith("Fig ") and len(claim["sentence"]) > 20 and claim["claim"]


@pytest.mark.parametrize("reader", ["summary", "scorecard"])
def test_a_table_without_its_mix_factor_is_refused_as_the_atlas_refuses_it(tmp_path, reader):
    """The summary, the scorecard and the atlas read a table's spectrum groups with the factor f the
    table records; one that records none is refused with the same line by each (no guessed f)."""
    from helpers.hand_tables import write_hand_tables
    from resstream.analysis.tables import AnalysisError, write_table

    fv, imnet = write_hand_tables(tmp_path)
    table, meta = read_table(fv["2.0"])
    write_table(table, fv["2.0"], {k: v for k, v in meta.items() if k != "analysis"})
    with pytest.raises(AnalysisError, match=r"2.0/fv_table.csv does not record the analysis.mix_factor its groups "
                                            r"were made with. Fix: rebuild the table \(snakemake -R metric_table\)"):
        if reader == "summary":
            build_summary(fv, imnet, str(tmp_path / "summary.json"))
        else:
            sc.write_scorecard(fv, imnet, sc.scorecard_outputs(str(tmp_path)))
    assert not (tmp_path / "summary.json").exists() and not list(tmp_path.glob("paper_check*"))
