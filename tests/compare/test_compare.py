"""The cross-model comparison: hand-made runs checked by hand, and a real resnet34 run through
Snakemake (2 blocks, 2 channels, 3 FV steps, 20 images) compared with a resnet18 run."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.figure_files import check_figure_files
from helpers.hand_tables import RANDOM, write_hand_tables
from helpers.runs import arch_run
from resstream.analysis import summary as analysis
from resstream.analysis.summary import AnalysisError, build_summary, read_table
from resstream.base.errors import ConfigError
from resstream.compare.runs import compare_outputs, compare_runs, comparison_folder
from resstream.workflow.config import validate_config

R34 = dict(
    RANDOM, arch="resnet34", state_dict_sha256="cc" * 32, label="resnet34 RANDOM WEIGHTS (random:0, not pretrained)"
)


def hand_run(root, weights):
    """A finished run made of the hand tables (blocks 2.0, 2.1; M = 1, .5, 3, 5, dead, 1.2)."""
    fv, imnet = write_hand_tables(root, weights=weights)
    build_summary(fv, imnet, analysis.summary_json(str(root)), fig34_blocks=["2.1"])
    return str(root)


@pytest.fixture(scope="module")
def hand_comparison(tmp_path_factory):
    """The comparison of two hand runs (resnet18 and resnet34 weights) in 4 depth bins: ``(folder, outputs)``."""
    tmp = tmp_path_factory.mktemp("hand_comparison")
    runs = {"r18": hand_run(tmp / "r18", RANDOM), "r34": hand_run(tmp / "r34", R34)}
    return tmp / "cmp", compare_runs(runs, str(tmp / "cmp"), depth_bins=4)


def test_comparison_tables_by_hand(hand_comparison):
    folder, out = hand_comparison
    assert out == compare_outputs(str(folder))
    blocks, meta = read_table(out["blocks"])
    # relative depth = index / blocks: resnet18 2.0 = 2/8, 2.1 = 3/8; resnet34 2.0 = 3/16, 2.1 = 4/16
    assert list(zip(blocks["model"], blocks["block"], blocks["relative_depth"], blocks["depth_bin"])) == [
        ("r18", "2.0", 0.25, 1),
        ("r18", "2.1", 0.375, 1),
        ("r34", "2.0", 0.1875, 0),
        ("r34", "2.1", 0.25, 1),
    ]
    assert list(blocks["n_blocks"]) == [8, 8, 16, 16] and list(blocks["arch"]) == ["resnet18"] * 2 + ["resnet34"] * 2
    row = blocks.iloc[0]
    assert (row["channels"], row["overwrite"], row["mix"], row["skip"], row["no_mix_ratio"]) == (6, 1, 2, 2, 1)
    assert row["median_M"] == pytest.approx(1.2)  # median of 1, .5, 3, 5, 1.2
    assert row["pct_scale_invariant_all"] == pytest.approx(33.333) and row[
        "pct_scale_invariant_nomix"
    ] == pytest.approx(83.333)
    hist, _ = read_table(out["histograms"])
    assert len(hist) == 2 * 4 * 20
    h18 = hist[(hist["model"] == "r18") & (hist["depth_bin"] == 1)]
    assert h18["blocks"].iloc[0] == "2.0 2.1" and h18["count"].sum() == 10 and h18["channels_without_M"].iloc[0] == 2
    # bins [.5,.75): M .5; [1,1.25): M 1 and 1.2; [3,3.25): 3; [4.75,5]: 5 - pooled over two blocks
    nonzero = dict(zip(h18.loc[h18["count"] > 0, "bin_lo"], h18.loc[h18["count"] > 0, "count"]))
    assert nonzero == {0.5: 2, 1.0: 4, 3.0: 2, 4.75: 2}
    assert h18.loc[h18["bin_lo"] == 1.0, "fraction"].iloc[0] == pytest.approx(0.4)
    assert hist[(hist["model"] == "r18") & (hist["depth_bin"] == 0)]["count"].sum() == 0
    assert hist[(hist["model"] == "r34") & (hist["depth_bin"] == 0)]["blocks"].iloc[0] == "2.0"
    runs_df, _ = read_table(out["runs"])
    assert list(runs_df["state_dict_sha256"]) == ["aa" * 32, "cc" * 32]
    assert meta["weights"]["weights_source"] == "random" and set(meta["runs"]) == {"r18", "r34"}
    check_figure_files(folder / "compare_models.png", folder / "compare_models.pdf")


def test_comparison_refuses_a_run_without_summary(tmp_path):
    with pytest.raises(AnalysisError, match="compare.runs.nope: .*summary.json does not exist"):
        compare_runs({"nope": str(tmp_path / "missing")}, str(tmp_path / "cmp"))
    with pytest.raises(ConfigError, match="compare.depth_bins"):
        validate_config({"compare": {"runs": {"a": "x"}, "depth_bins": 0}})


@pytest.fixture(scope="module")
def resnet34_run(tmp_path_factory, sample_dir):
    """A real resnet34 run (blocks 2.0 and 2.1, channels 0-1, 3 FV steps, 20 images) to its summary
    and Fig 2, and in the same invocation its comparison with a (hand-made) resnet18 run."""
    tmp = tmp_path_factory.mktemp("r34")
    r18 = hand_run(tmp / "r18", RANDOM)
    runs = {"resnet18": r18, "resnet34": str(tmp / "results")}
    out = compare_outputs(str(tmp / "cmp" / "resnet18+resnet34"))  # the folder is named after the runs
    results = arch_run(
        tmp, sample_dir, "resnet34", ["2.0", "2.1"], [out["png"]], compare={"runs": runs, "results": str(tmp / "cmp")}
    )
    return results, out


def test_resnet34_run_reaches_its_summary(resnet34_run):
    results, _ = resnet34_run
    summary = json.loads(open(analysis.summary_json(str(results))).read())
    assert summary["weights"]["arch"] == "resnet34" and summary["weights"]["kind"] == "random"
    assert list(summary["blocks"]) == ["2.0", "2.1"]
    assert summary["blocks"]["2.0"]["layers"] == {
        "I": "layer2.0.downsample.1",
        "B": "layer2.0.bn2",
        "O": "layer2.0.prerelu_out",
    }
    assert summary["blocks"]["2.1"]["layers"] == {
        "I": "layer2.0.prerelu_out",
        "B": "layer2.1.bn2",
        "O": "layer2.1.prerelu_out",
    }
    # stage 2's first block keeps stage 1's jitter 0, the rest of stage 2 get 4 (per-stage rule)
    assert {r: s["jitter"] for r, s in summary["blocks"]["2.0"]["fv_settings"].items()} == {"I": 0, "B": 0, "O": 0}
    assert {r: s["jitter"] for r, s in summary["blocks"]["2.1"]["fv_settings"].items()} == {"I": 0, "B": 4, "O": 4}
    assert all(s["steps"] == 3 for s in summary["blocks"]["2.0"]["fv_settings"].values())
    assert "stats" in summary["blocks"]["2.1"] and "stats" not in summary["blocks"]["2.0"]  # Figs 3/4: 2.1
    table, _ = read_table(analysis.metric_table_csv(str(results), "2.0", "fv"))
    assert list(table["channel"]) == [0, 1] and np.isfinite(table["conv_w_abs_mean"]).all()
    check_figure_files(results / "figures" / "fig2_mix_histograms.png", results / "figures" / "fig2_mix_histograms.pdf")


def test_comparison_rule_from_two_runs(resnet34_run):
    results, out = resnet34_run
    blocks, meta = read_table(out["blocks"])
    r34 = blocks[blocks["model"] == "resnet34"]
    assert list(r34["block"]) == ["2.0", "2.1"] and list(r34["relative_depth"]) == [3 / 16, 4 / 16]
    assert list(r34["depth_bin"]) == [0, 1]
    assert (
        list(r34["channels"]) == [2, 2]
        and (r34["overwrite"] + r34["mix"] + r34["skip"] + r34["no_mix_ratio"] == 2).all()
    )
    summary = json.loads(open(analysis.summary_json(str(results))).read())
    assert list(r34["pct_scale_invariant_all"]) == [
        summary["blocks"][b]["percent_scale_invariant"]["fv_all_criteria"] for b in ("2.0", "2.1")
    ]
    assert list(blocks[blocks["model"] == "resnet18"]["block"]) == ["2.0", "2.1"]
    assert meta["runs"]["resnet34"]["weights"]["state_dict_sha256"] == summary["weights"]["state_dict_sha256"]
    hist = pd.read_csv(out["histograms"])  # plain CSVs
    m20 = read_table(analysis.metric_table_csv(str(results), "2.0", "fv"))[0]["M"].to_numpy(dtype=float)
    assert hist[(hist["model"] == "resnet34") & (hist["depth_bin"] == 0)]["count"].sum() == int(np.isfinite(m20).sum())
    check_figure_files(Path(out["png"]), Path(out["pdf"]))
    runs = pd.read_csv(out["runs"])
    assert list(runs["model"]) == ["resnet18", "resnet34"] and runs["weights"].str.contains("RANDOM WEIGHTS").all()


def test_depth_bin_table_puts_the_families_side_by_side(hand_comparison):
    _folder, out = hand_comparison
    by_depth, _ = read_table(out["by_depth"])
    assert len(by_depth) == 2 * 4 and set(by_depth["family"]) == {"ResNet"}
    # r18 bin 1 pools 2.0 and 2.1 (hand tables: 6 channels each, 1 overwrite, 2 mix, 2 skip, 1 without M)
    row = by_depth[(by_depth["model"] == "r18") & (by_depth["depth_bin"] == 1)].iloc[0]
    assert (row["blocks"], row["channels"]) == ("2.0 2.1", 12)
    assert (row["overwrite_fraction"], row["mix_fraction"], row["skip_fraction"]) == pytest.approx(
        (2 / 12, 4 / 12, 4 / 12)
    )
    assert row["pct_scale_invariant_all"] == pytest.approx(33.333) and row[
        "pct_scale_invariant_nomix"
    ] == pytest.approx(83.333)
    empty = by_depth[(by_depth["model"] == "r18") & (by_depth["depth_bin"] == 0)].iloc[0]
    assert empty["channels"] == 0 and np.isnan(empty["mix_fraction"])
    r34 = by_depth[(by_depth["model"] == "r34") & (by_depth["depth_bin"] == 0)].iloc[0]
    assert (r34["blocks"], r34["channels"], r34["overwrite_fraction"]) == ("2.0", 6, pytest.approx(1 / 6))


def test_every_run_in_the_title_stays_inside_the_figure(tmp_path, monkeypatch):
    """Three runs with long weights labels (the three demos): each run gets its own title line, and
    every line of the title lies inside the figure (with them on one line the right end was cut)."""
    import matplotlib.pyplot as plt

    long = {
        name: dict(RANDOM, arch=arch, label=f"{arch} RANDOM WEIGHTS (random:0, not pretrained)")
        for name, arch in (("resnet18", "resnet18"), ("resnet50", "resnet50"), ("convnext_tiny", "resnet34"))
    }
    runs = {name: hand_run(tmp_path / name, weights) for name, weights in long.items()}
    closed, close = [], plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: closed.append(fig))  # kept open to measure
    compare_runs(runs, str(tmp_path / "cmp"), depth_bins=4)
    fig = closed[-1]
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle
    lines = title.get_text().splitlines()
    assert lines[1:] == [f"{name}: {w['label']}" for name, w in long.items()]
    box, inside = title.get_window_extent(renderer), fig.bbox
    assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1, (box, inside)
    top_of_panels = max(ax.get_tightbbox(renderer).y1 for ax in fig.axes)
    assert top_of_panels <= box.y0  # the title does not run into the panels
    close(fig)


def test_each_set_of_runs_has_its_own_comparison_folder():
    first = comparison_folder("results/compare", {"resnet18": "results/demo", "resnet50": "results/demo-resnet50"})
    assert first == "results/compare/resnet18+resnet50"
    assert comparison_folder("results/compare", {"resnet50": "a", "resnet18": "b"}) == first  # order-free
    assert comparison_folder("results/compare", {"resnet18": "results/demo", "convnext": "c"}) != first
    many = {f"a_rather_long_run_name_{i:02d}": "x" for i in range(12)}
    folder = os.path.basename(comparison_folder("results/compare", many))
    assert len(folder) <= 100 and folder.startswith("a_rather_long_run_name_00+") and "+9-more-" in folder
    fewer = dict(list(many.items())[:11])
    assert os.path.basename(comparison_folder("results/compare", fewer)) != folder


def test_two_comparisons_keep_both_outputs(tmp_path):
    r18, r34 = hand_run(tmp_path / "r18", RANDOM), hand_run(tmp_path / "r34", R34)
    first = comparison_folder(str(tmp_path / "cmp"), {"r18": r18, "r34": r34})
    second = comparison_folder(str(tmp_path / "cmp"), {"r18": r18})
    compare_runs({"r18": r18, "r34": r34}, first)
    before = Path(compare_outputs(first)["blocks"]).read_bytes()
    compare_runs({"r18": r18}, second)
    assert Path(compare_outputs(first)["blocks"]).read_bytes() == before
    assert pd.read_csv(compare_outputs(second)["runs"])["model"].tolist() == ["r18"]
