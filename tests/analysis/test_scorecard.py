"""The reproduction scorecard on hand-made tables of a custom checkpoint (tests/helpers/paper_tables.py):
tables that agree with every claim, with none, and with some; not-studied blocks and channels; every
reading of A.3 (o_relu, a3_mean); random weights (nothing judged); the paper's words as settings; the
quotes are the paper's; the files, the atlas index and the workflow rule."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

import helpers.paper_tables as pt
from resstream.analysis import scorecard as sc
from resstream.analysis.summary import build_summary, read_table
from resstream.atlas import write as atlas

N_ROWS = len(sc.load_claims()["claims"]) + 3 * sum(1 for c in sc.load_claims()["claims"] if c["check"] == "fig7")
PAPER_EXCERPTS = Path(__file__).with_name("paper_excerpts.md")  # the paper's sentences the claims quote


def run_scorecard(tmp_path, blocks, readings=None, **kw):
    fv, imagenet = pt.write_tables(tmp_path, blocks, **kw)
    out = sc.scorecard_outputs(str(tmp_path))
    return sc.write_scorecard(fv, imagenet, out, block_channels=pt.WIDTH, readings=readings), out


def row(df, claim_id, o_relu=None, a3_mean="paper"):
    rows = df[
        (df["claim_id"] == claim_id) & ((df["o_relu"] == o_relu) & (df["a3_mean"] == a3_mean) if o_relu else True)
    ]
    assert len(rows) == 1, (claim_id, o_relu, len(rows))
    return rows.iloc[0]


def test_tables_that_agree_reproduce_every_claim(tmp_path):
    df, out = run_scorecard(tmp_path, pt.agreeing())
    assert len(df) == N_ROWS == 80
    assert sc.verdict_counts(df) == {
        sc.REPRODUCED: 80,
        sc.PARTLY: 0,
        sc.NOT_REPRODUCED: 0,
        sc.NOT_APPLICABLE: 0,
        sc.NOT_JUDGED: 0,
    }
    assert row(df, "fig7_2.1", "pre")["overlap"] == "9 of 9 channels found, precision 1"
    assert row(df, "fig7_3.0", "post")["this_run"] == "none"
    assert row(df, "fig6_1.1")["this_run"].startswith("top 3 by SM: 19, 46")
    # every row names its figure and the paper's sentence
    assert df["sentence"].str.len().min() > 20 and set(df["figure"]) >= {
        "Fig 1A",
        "Fig 2",
        "Fig 3",
        "Fig 4 top",
        "Fig 5",
        "Fig 8",
    }


def test_tables_that_contradict_reproduce_none(tmp_path):
    df, _ = run_scorecard(tmp_path, pt.contrary())
    assert sc.verdict_counts(df) == {
        sc.REPRODUCED: 0,
        sc.PARTLY: 0,
        sc.NOT_REPRODUCED: 80,
        sc.NOT_APPLICABLE: 0,
        sc.NOT_JUDGED: 0,
    }
    # the paper lists no Fig 7 channel for 3.0; this run does, and with the paper's sign test
    # (raw deltas) a negative denominator lets channels with m < 0 pass: the consistency row says so
    assert row(df, "fig7_3.0", "pre")["this_run"] != "none"
    assert re.search(r"6 violation\(s\): 3\.0 ch \d+ \(FV: m = -", row(df, "check_fig7_criteria")["this_run"])
    assert re.match(r"rho = 0\.\d+, p = ", row(df, "fig3_2.1_gamma")["this_run"])  # positive


def test_tables_that_partly_agree(tmp_path):
    df, _ = run_scorecard(tmp_path, pt.mixed())
    assert sc.verdict_counts(df) == {
        sc.REPRODUCED: 75,
        sc.PARTLY: 5,
        sc.NOT_REPRODUCED: 0,
        sc.NOT_APPLICABLE: 0,
        sc.NOT_JUDGED: 0,
    }
    for o_relu in ("pre", "post"):
        for a3_mean in ("paper", "code"):
            r = row(df, "fig7_3.1", o_relu, a3_mean)
            assert r["verdict"] == sc.PARTLY and r["overlap"] == "6 of 9 channels found, precision 0.5"
    r = row(df, "fig8_2.0")
    assert r["verdict"] == sc.PARTLY and r["overlap"] == "1 of 3 channels found" and r["this_run"].endswith("42, 0, 1")
    assert row(df, "check_fig1b_in_fig7")["verdict"] == sc.REPRODUCED  # 178, 215, 25 are among the 6 kept


def test_blocks_and_channels_not_studied_are_not_applicable(tmp_path):
    """Blocks 2.1 and 3.1 only, and 3.1 without channels 200-255 (215 of Fig 1B, 204 and 200 of Fig 7)."""
    blocks = pt.agreeing()
    df, _ = run_scorecard(
        tmp_path,
        {"2.1": blocks["2.1"], "3.1": blocks["3.1"]},
        edit=lambda b, s, raw: raw.drop(raw.index[raw["channel"] >= 200], inplace=True) if b == "3.1" else None,
    )
    assert row(df, "fig1a_overwrite")["verdict"] == sc.NOT_APPLICABLE
    assert row(df, "fig1a_overwrite")["this_run"] == "block 1.1 not studied"
    assert row(df, "fig7_4.1", "post")["verdict"] == sc.NOT_APPLICABLE  # both o_relu rows, not studied
    assert row(df, "fig2_simple_less_skewed")["verdict"] == sc.NOT_APPLICABLE  # no downsample block
    # 3.1's lists and shares are about the whole block: with 200 of its 256 channels, not judged
    for claim_id in ("fig7_3.1", "fig8_3.1", "fig6_3.1", "fig5_3.1_many", "fig4_negative_3.1"):
        assert set(df.loc[df["claim_id"] == claim_id, "verdict"]) == {"not judged (200 of 256 channels studied)"}, (
            claim_id
        )
    assert row(df, "fig5_3.0_nomix")["verdict"] == sc.NOT_APPLICABLE  # 3.0 not studied at all
    r = row(df, "fig1b_scale_invariant")  # named channels: judged on those studied
    assert r["verdict"] == sc.PARTLY and r["overlap"] == "2 of 2 channels found; not studied: 215"
    assert (
        row(df, "fig7_2.1", "pre")["verdict"] == sc.REPRODUCED and row(df, "fig5_2.1_many")["verdict"] == sc.REPRODUCED
    )

    # analysis.scorecard.studied_fraction 0.75: 200 of 256 (78 %) is enough
    df, _ = run_scorecard(
        tmp_path / "three_quarters",
        {"2.1": blocks["2.1"], "3.1": blocks["3.1"]},
        readings={"studied_fraction": 0.75},
        edit=lambda b, s, raw: raw.drop(raw.index[raw["channel"] >= 200], inplace=True) if b == "3.1" else None,
    )
    r = row(df, "fig7_3.1", "pre")  # 6 of the 9 studied: all found, but the claim is not fully checked
    assert (
        r["verdict"] == sc.PARTLY and r["overlap"] == "6 of 6 channels found, precision 1; not studied: 215, 204, 200"
    )
    r = row(df, "fig8_3.1")  # 246 not studied
    assert r["verdict"] == sc.PARTLY and r["overlap"] == "2 of 2 channels found; not studied: 246"


def test_a_handful_of_channels_is_not_judged(tmp_path):
    """Three of 1.1's 64 channels: its shares and lists get no verdict; its named channels do."""
    blocks = pt.agreeing()
    df, out = run_scorecard(
        tmp_path,
        {"1.1": blocks["1.1"]},
        edit=lambda b, s, raw: raw.drop(raw.index[~raw["channel"].isin([19, 38, 25])], inplace=True),
    )
    assert row(df, "fig5_1.1_many")["verdict"] == "not judged (3 of 64 channels studied)"
    assert row(df, "fig3_1.1_gamma")["verdict"] == "not judged (3 of 64 channels studied)"  # rho = -1 on 3 channels
    assert row(df, "fig8_1.1")["verdict"] == sc.NOT_APPLICABLE  # none of 44, 27, 55 studied
    assert row(df, "fig1a_mix")["verdict"] == sc.REPRODUCED
    # 1.1's shares, lists and statistics (Figs 3 (2), 4 (B(x_I) < 0), 5, 6; 7: 4 rows) are not judged
    # (Fig 4's ANOVAs, one overwrite channel, are not applicable); its named channels (Fig 1A: 3) are,
    # and so is the consistency check of its Fig 7 channel (19)
    counts = sc.verdict_counts(df)
    assert (
        counts[sc.NOT_JUDGED] == 9
        and counts[sc.REPRODUCED] == 4
        and counts[sc.PARTLY] == counts[sc.NOT_REPRODUCED] == 0
    )
    assert "Verdicts: 4 reproduced, 0 partly, 0 not reproduced, " in open(out["md"]).read()


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
        other = "post" if run_o_relu == "pre" else "pre"
        rows = df[df["claim_id"] == "fig7_2.1"]
        assert list(zip(rows["o_relu"], rows["a3_mean"])) == [
            (run_o_relu, "paper"),
            (run_o_relu, "code"),
            (other, "paper"),
            (other, "code"),
        ]
        assert (
            "this run's o_relu and a3_mean" in rows["claim"].iloc[0] and "the other A.3 mean" in rows["claim"].iloc[1]
        )


def test_random_weights_get_no_verdict(tmp_path):
    """The demo's case: the numbers are shown, every row says "not judged (random weights)"."""
    df, out = run_scorecard(tmp_path / "random", pt.mixed(), weights=pt.RANDOM)
    assert set(df["verdict"]) == {"not judged (random weights)"}
    assert sc.verdict_counts(df) == {
        sc.REPRODUCED: 0,
        sc.PARTLY: 0,
        sc.NOT_REPRODUCED: 0,
        sc.NOT_APPLICABLE: 0,
        sc.NOT_JUDGED: 80,
    }
    assert row(df, "fig7_3.1", "pre")["overlap"] == "6 of 9 channels found, precision 0.5"  # the numbers stay
    md = open(out["md"]).read()
    assert (
        md.splitlines()[0] == "# Reproduction scorecard — RANDOM WEIGHTS: the comparison with the paper is meaningless"
    )
    assert "Verdicts: 0 reproduced, 0 partly, 0 not reproduced, 0 not applicable, 80 not judged." in md
    assert "| **reproduced** |" not in md and "| **not judged (random weights)** |" in md
    table, meta = read_table(out["csv"])
    assert list(table.columns) == [*sc.COLUMNS, "weights"] and len(table) == len(df)
    assert meta["title"].endswith(sc.MEANINGLESS) and meta["verdicts"][sc.REPRODUCED] == 0
    page = open(out["html"]).read()
    assert sc.MEANINGLESS in page and page.count('data-verdict="reproduced"') == 1  # the count chip only
    assert page.count('data-verdict="not judged"') == 80 + 1


def test_files_and_titles_custom_checkpoint_and_pretrained(tmp_path):
    df, out = run_scorecard(tmp_path / "custom", pt.mixed())
    md = open(out["md"]).read()
    assert md.splitlines()[0] == "# Reproduction scorecard" and pt.CUSTOM["label"] in md
    assert (
        "| Fig 7 | 3.1 |" in md
        and "6 of 9 channels found, precision 0.5" in md
        and "Verdicts: 75 reproduced, 5 partly" in md
    )
    page = open(out["html"]).read()
    assert sc.MEANINGLESS not in page and page.count('data-verdict="partly"') == 5 + 1  # 5 rows + the count chip

    _, out = run_scorecard(tmp_path / "pretrained", pt.agreeing(), weights=pt.PRETRAINED)
    assert open(out["md"]).readline().strip() == "# Reproduction scorecard"
    assert sc.MEANINGLESS not in open(out["html"]).read()


def test_html_is_escaped(tmp_path):
    df, out = run_scorecard(tmp_path, pt.agreeing())
    df.loc[0, "this_run"] = "<script>alert(1)</script>"
    html = sc.html_fragment(df, json.load(open(out["csv"].replace(".csv", ".json"))))
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_atlas_index_shows_the_scorecard(tmp_path):
    fv, imagenet = pt.write_tables(tmp_path, pt.mixed(), weights=pt.RANDOM)
    out = sc.scorecard_outputs(str(tmp_path))
    sc.write_scorecard(fv, imagenet, out, block_channels=pt.WIDTH)
    blocks = list(fv)
    build_summary(fv, imagenet, str(tmp_path / "summary.json"))
    atlas.write_index(
        blocks,
        [fv[b] for b in blocks],
        str(tmp_path / "summary.json"),
        str(tmp_path / "index.html"),
        str(tmp_path / "atlas.css"),
        str(tmp_path / "atlas.js"),
        scorecard_csv=out["csv"],
    )
    page = (tmp_path / "index.html").read_text()
    assert 'id="paper-check"' in page and sc.MEANINGLESS in page
    assert len(re.findall(r'<tr data-claim="[^"]+" data-verdict="not judged"', page)) == N_ROWS
    assert len(re.findall(r"<tr data-claim=", page)) == N_ROWS
    assert ".v-partly" in (tmp_path / "atlas.css").read_text()


@pytest.mark.parametrize("claim", sc.load_claims()["claims"], ids=lambda c: c["id"])
def test_every_claim_is_checkable_and_quotes_the_paper_verbatim(claim):
    """Each quote is a substring of the paper's text (tests/analysis/paper_excerpts.md: its sentences
    copied verbatim, line breaks and all); our own explanation goes in ``note``, never in a quote."""
    assert claim["check"] in sc.CHECKS
    assert claim["figure"].startswith("Fig ") and claim["claim"]
    paper = PAPER_EXCERPTS.read_text()
    for quote in sc.quotes(claim):
        assert len(quote) > 20 and quote in paper, quote


def test_the_paper_words_are_settings_and_printed(tmp_path):
    """ "many", "only a few" and "dominated" as analysis.scorecard says; the header prints them."""
    blocks = pt.agreeing()  # 1.1: 4 of 64 pass all (6.25 %); 4.0: 2 of 512 pass without the mix (0.4 %)
    df, out = run_scorecard(
        tmp_path, blocks, readings={"many_percent": 10, "few_percent": 0.2, "dominated_percent": 92}
    )
    assert row(df, "fig5_1.1_many")["verdict"] == sc.PARTLY and "at least 10 %" in row(df, "fig5_1.1_many")["rule"]
    assert row(df, "fig5_4.0_few_nomix")["verdict"] == sc.PARTLY  # 0.39 % is more than 0.2 %, within twice it
    assert row(df, "fig2_2.0_overwrite")["verdict"] == sc.REPRODUCED  # 2.0: 118 of 128 channels have M < 1 (92.2 %)
    md = open(out["md"]).read()
    assert (
        'Readings of the paper\'s words: "many" channels: at least 10 % of the block; "only a few": at most 0.2 %; '
        '"dominated by overwrite": at least 92 % with M < 1; claims about a whole block are judged when at least '
        "100 % of its channels were studied."
    ) in md
    _, out = run_scorecard(tmp_path / "defaults", blocks)
    assert (
        '"many" channels: at least 5 % of the block; "only a few": at most 5 %; "dominated by overwrite": at least 50 %'
        in open(out["md"]).read()
    )


def test_negative_block_readings_overall_and_among_skip_channels(tmp_path):
    """The new claim on hand values: 1.1 with B(x_I) < 0 in 3 of its 64 channels (4.7 %, below "many"),
    among them 2 of its skip channels; 2.1: only overwrite channels negative (no skip channel)."""

    def edit(block, stimulus, raw):
        if stimulus == "fv" and block == "1.1":
            raw["in_mid"] = 1.0
            raw.loc[raw["channel"].isin([0, 1, 38]), "in_mid"] = -2.0  # 0, 1: skip (M >= 1); 38: overwrite
        if stimulus == "fv" and block == "2.1":
            raw["in_mid"] = np.where(raw["out_in"] < 1.0, -1.0, 1.0)  # M < 1: overwrite

    blocks = pt.agreeing()
    df, _ = run_scorecard(tmp_path, {"1.1": blocks["1.1"], "2.1": blocks["2.1"]}, edit=edit)
    r = row(df, "fig4_negative_1.1")
    skip = int((blocks["1.1"].M >= 1).sum())
    assert r["this_run"] == f"4.7 % of 64 channels, {100 * 2 / skip:.1f} % of {skip} skip channels with in_mid < 0"
    assert r["verdict"] == sc.NOT_REPRODUCED  # 2 of 57 skip channels = 3.5 %: below 5 % too
    r = row(df, "fig4_negative_2.1")
    skip = int((blocks["2.1"].M >= 1).sum())
    assert (
        r["verdict"] == sc.PARTLY
        and r["this_run"] == f"10.9 % of 128 channels, 0.0 % of {skip} skip channels with in_mid < 0"
    )
    df, _ = run_scorecard(tmp_path / "three", {"1.1": blocks["1.1"]}, edit=edit, readings={"many_percent": 3})
    assert row(df, "fig4_negative_1.1")["verdict"] == sc.REPRODUCED  # 4.7 % and 3.5 % both at least 3 %


@pytest.mark.parametrize("reader", ["summary", "scorecard"])
def test_a_table_without_its_mix_factor_is_refused_as_the_atlas_refuses_it(tmp_path, reader):
    """The summary, the scorecard and the atlas read a table's spectrum groups with the factor f the
    table records; one that records none is refused with the same line by each (no guessed f)."""
    from helpers.hand_tables import write_hand_tables
    from resstream.base.tables import AnalysisError, write_table

    fv, imnet = write_hand_tables(tmp_path)
    table, meta = read_table(fv["2.0"])
    write_table(table, fv["2.0"], {k: v for k, v in meta.items() if k != "analysis"})
    with pytest.raises(
        AnalysisError,
        match=r"2.0/fv_table.csv does not record the analysis.mix_factor its groups "
        r"were made with. Fix: rebuild the table \(snakemake -R metric_table\)",
    ):
        if reader == "summary":
            build_summary(fv, imnet, str(tmp_path / "summary.json"))
        else:
            sc.write_scorecard(fv, imnet, sc.scorecard_outputs(str(tmp_path)))
    assert not (tmp_path / "summary.json").exists() and not list(tmp_path.glob("paper_check*"))


def test_fig7_for_both_a3_mean_readings(tmp_path):
    """Channel 108 of 2.1 given the issue's A.3 hand case on its top-9 images: B(V_I) = [3, -3, 0 x 7],
    B(S V_I) = [2, 0 x 8] (mean 0, mean of ReLU 1/3; 2/9 both ways). ReLU of the mean passes it
    (0 < 0.222), the mean of ReLU fails it (m = -0.111): Fig 7's paper rows keep it, the code rows lose it."""

    def edit(block, stimulus, raw):
        if block == "2.1" and stimulus == "imagenet":
            at = raw["channel"] == 108
            raw.loc[at, ["in_mid", "relu_B_of_xI", "B_of_SxI", "relu_B_of_SxI"]] = [0.0, 3 / 9, 2 / 9, 2 / 9]

    for a3_mean in ("paper", "code"):  # the run's own reading first, the other re-derived: the same rows
        df, out = run_scorecard(tmp_path / a3_mean, pt.agreeing(), edit=edit, a3_mean=a3_mean)
        for o_relu in ("pre", "post"):
            paper, code = row(df, "fig7_2.1", o_relu, "paper"), row(df, "fig7_2.1", o_relu, "code")
            assert paper["verdict"] == sc.REPRODUCED and paper["this_run"].startswith("108, ")
            assert (
                code["verdict"] == sc.PARTLY and code["overlap"].startswith("8 of 9") and "108" not in code["this_run"]
            )
        assert df.loc[df["claim_id"] == "fig7_2.1", "a3_mean"].iloc[0] == a3_mean
        assert f"o_relu pre and a3_mean {a3_mean} (Fig 7 rows show every reading of A.3)" in open(out["md"]).read()


# sha256 of the page and the text the scorecard wrote for these hand-made tables when its HTML and
# CSS were strings in scorecard.py: moving them into template files changed no byte
PAGES_BEFORE_TEMPLATES = {
    ("agreeing", "CUSTOM"): (
        "16a0ac4ad06ef292d6acea15dd1e259948bcd85945e18e952cbd45ab4312d875",
        "6c2a3ca76ea4dae6ef29f4873993b96738fbc3643fe73f0b2d23a81e1e2b2276",
    ),
    ("mixed", "RANDOM"): (
        "66e42081ffc822fbcf12e2c1e58404ab81220e21d0cab912a31b5d9d44fdee3d",
        "7948d26201843860fd233df1934f42305d218ded3d91ee460e4da1eab1b74820",
    ),
}


@pytest.mark.parametrize("blocks, weights", sorted(PAGES_BEFORE_TEMPLATES))
def test_the_templates_write_the_same_bytes_as_the_inline_strings_did(tmp_path, blocks, weights):
    import hashlib

    fv, imagenet = pt.write_tables(tmp_path, getattr(pt, blocks)(), weights=getattr(pt, weights))
    out = sc.scorecard_outputs(str(tmp_path))
    sc.write_scorecard(fv, imagenet, out, block_channels=pt.WIDTH)
    digests = tuple(hashlib.sha256(Path(out[kind]).read_bytes()).hexdigest() for kind in ("html", "md"))
    assert digests == PAGES_BEFORE_TEMPLATES[(blocks, weights)]
    assert sc.SCORECARD_CSS in Path(out["html"]).read_text()


def test_editing_a_scorecard_template_reruns_the_jobs_that_render_it():
    from helpers import REPO
    from resstream.base.code_fingerprint import fingerprinted_files

    templates = {
        "analysis/templates/scorecard_page.html.j2",
        "analysis/templates/scorecard_fragment.html.j2",
        "analysis/templates/scorecard.css",
    }
    for script in ("paper_check.py", "atlas.py"):
        assert templates <= set(fingerprinted_files(str(REPO / "scripts" / script))), script
