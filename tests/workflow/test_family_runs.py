"""One arch of every residual family through the workflow (random weights, 2 blocks, 2 channels,
3 FV steps, 20 images): model card, FVs, dataset pass, measurements, summary and Fig 2.  Each
family's I/B/O layers and jitters are checked against its block semantics (families.py).

The atlas (exemplar grids, channel FVs, block pages, index) reads only the tables, FV folders and
grids the stages before it wrote, whatever the family: one family (ATLAS_FAMILY, ConvNeXt: no
nonlinearity after the sum, an I made between stages) runs it here, the ResNets in every other
workflow test.  The other families stop at the summary, which keeps their runs to the stages whose
code knows the family."""

import glob
import json

import numpy as np
import pytest

from helpers.runs import arch_run
from resstream.analysis import summary as analysis
from resstream.analysis.summary import read_table

RG = "trunk_output.block2.block2-"
# arch -> {block: ({role: layer}, {role: jitter})}
FAMILY_RUNS = {
    "resnext50_32x4d": {
        "2.0": (
            {"I": "layer2.0.downsample.1", "B": "layer2.0.bn3", "O": "layer2.0.prerelu_out"},
            {"I": 0, "B": 0, "O": 0},
        ),
        "2.1": (
            {"I": "layer2.0.prerelu_out", "B": "layer2.1.bn3", "O": "layer2.1.prerelu_out"},
            {"I": 0, "B": 4, "O": 4},
        ),
    },
    "regnet_y_400mf": {
        f"{RG}0": ({"I": f"{RG}0.proj.1", "B": f"{RG}0.f.c", "O": f"{RG}0.prerelu_out"}, {"I": 0, "B": 0, "O": 0}),
        f"{RG}1": ({"I": f"{RG}0.prerelu_out", "B": f"{RG}1.f.c", "O": f"{RG}1.prerelu_out"}, {"I": 0, "B": 4, "O": 4}),
    },
    "convnext_tiny": {
        "features.1.1": (
            {"I": "features.1.0", "B": "features.1.1.stochastic_depth", "O": "features.1.1"},
            {"I": 0, "B": 0, "O": 0},
        ),
        "features.3.0": (
            {"I": "features.2", "B": "features.3.0.stochastic_depth", "O": "features.3.0"},
            {"I": 4, "B": 4, "O": 4},
        ),
    },
    "mobilenet_v2": {
        "features.3": ({"I": "features.2", "B": "features.3.conv", "O": "features.3"}, {"I": 0, "B": 0, "O": 0}),
        "features.5": ({"I": "features.4", "B": "features.5.conv", "O": "features.5"}, {"I": 0, "B": 4, "O": 4}),
    },
    "mobilenet_v3_small": {
        "features.3": ({"I": "features.2", "B": "features.3.block", "O": "features.3"}, {"I": 0, "B": 4, "O": 4}),
        "features.5": ({"I": "features.4", "B": "features.5.block", "O": "features.5"}, {"I": 4, "B": 16, "O": 16}),
    },
    "efficientnet_v2_s": {  # FusedMBConv with expand ratio 1, and an MBConv with squeeze-excitation
        "features.1.1": (
            {"I": "features.1.0", "B": "features.1.1.block", "O": "features.1.1"},
            {"I": 0, "B": 0, "O": 0},
        ),
        "features.4.1": (
            {"I": "features.4.0", "B": "features.4.1.block", "O": "features.4.1"},
            {"I": 4, "B": 16, "O": 16},
        ),
    },
}
ATLAS_FAMILY = "convnext_tiny"
SE_CROP_REFUSED = {
    "regnet_y_400mf": f"{RG}1.f.c",
    "mobilenet_v3_small": "features.5.block",
    "efficientnet_v2_s": "features.4.1.block",
}


@pytest.fixture(scope="module", params=list(FAMILY_RUNS))
def family_run(request, tmp_path_factory, sample_dir):
    arch = request.param
    tmp = tmp_path_factory.mktemp(arch)
    extra = [tmp / "results" / "model_card.json"] + [tmp / "results" / "atlas" / "index.html"] * (arch == ATLAS_FAMILY)
    return arch, arch_run(tmp, sample_dir, arch, list(FAMILY_RUNS[arch]), extra)


def test_every_family_runs_through_the_workflow(family_run):
    arch, results = family_run
    summary = json.loads(open(analysis.summary_json(str(results))).read())
    assert summary["weights"]["arch"] == arch and summary["weights"]["kind"] == "random"
    assert list(summary["blocks"]) == list(FAMILY_RUNS[arch])
    for block, (layers, jitters) in FAMILY_RUNS[arch].items():
        entry = summary["blocks"][block]
        assert entry["layers"] == layers
        assert {role: s["jitter"] for role, s in entry["fv_settings"].items()} == jitters
        assert all(s["steps"] == 3 for s in entry["fv_settings"].values())
        table, _ = read_table(analysis.metric_table_csv(str(results), block, "fv"))
        assert list(table["channel"]) == [0, 1] and np.isfinite(table["conv_w_abs_mean"]).all()
        assert (results / "atlas" / block / "index.html").is_file() == (arch == ATLAS_FAMILY)
    card = json.loads((results / "model_card.json").read_text())
    assert card["arch"] == arch and card["blocks"] == list(FAMILY_RUNS[arch])
    assert card["blocks_without_residual_sum"] == [b["block"] for b in card["model_blocks"] if not b["residual_sum"]]
    assert (results / "figures" / "fig2_mix_histograms.png").stat().st_size > 0
    if arch in SE_CROP_REFUSED:  # the FV job says why it ran the full forward
        logs = "".join(open(p).read() for p in glob.glob(f"{results}/logs/fv/{SE_CROP_REFUSED[arch]}/*.log"))
        assert "(SqueezeExcitation) mixes the whole map): full forward" in logs
