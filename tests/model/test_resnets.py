"""Every torchvision ResNet: Bottleneck taps against the block's own submodules, receptive-field
crops of Bottleneck layers, the per-stage jitter rule, weights of resnet50/34, figure layouts and
the resnet50 demo DAG."""

import numpy as np
import pytest
import torch

from helpers.manual_forward import assert_taps_match_manual_forward, manual_maps
from helpers.workflow import smk
from resstream.analysis import table_figures
from resstream.analysis.measure import weight_magnitudes
from resstream.analysis.summary import fig3_fig4_blocks
from resstream.model import torchvision_weights as TW
from resstream.model import weights as W
from resstream.model.blocks import B, BlockError, TapRef, parse_layer, study_layers
from resstream.model.checkpoint_files import WeightsError, file_sha256
from resstream.model.receptive_field import _conv_path, verify_plan
from resstream.model.structure import structure
from resstream.model.taps import block_taps
from resstream.model.walk import model_blocks
from resstream.model.weights_identity import state_dict_sha256
from resstream.workflow.config import validate_config
from resstream.workflow.plan import StudyPlan, default_jitter

BOTTLENECK_BLOCKS = ["1.0", "1.1", "2.0", "2.1", "3.0", "4.2"]


@pytest.fixture(scope="module")
def resnet50():
    model, identity = W.load_model("resnet50", "random:0")
    return model, identity


@pytest.fixture(scope="module")
def bottleneck_inputs(resnet50):
    """A random batch and the input of every block of resnet50, computed module by module."""
    model, _ = resnet50
    torch.manual_seed(1)
    x = torch.randn(2, 3, 160, 160)  # maps 40, 20, 10, 5: every block, at a third of 224's cost
    return x, {block: maps["X"] for block, maps in manual_maps(model, x, upto=None).items()}


@pytest.mark.parametrize("block", BOTTLENECK_BLOCKS)
def test_bottleneck_taps_match_independent_computation(resnet50, bottleneck_inputs, block):
    model, _ = resnet50
    x, ins = bottleneck_inputs
    taps = assert_taps_match_manual_forward(model, x, block, ins[block])
    # B is bn3's output: as many channels as the block's output (4x conv2's in a Bottleneck)
    module = model.get_submodule(f"layer{block}")
    assert taps[TapRef(block, B)].shape[1] == module.bn3.num_features == 4 * module.bn2.num_features


def test_bottleneck_layer_names(resnet50):
    model, _ = resnet50
    blocks = model_blocks(model)
    assert [b.name for b in blocks] == [f"{s}.{i}" for s, n in zip(range(1, 5), (3, 4, 6, 3)) for i in range(n)]
    assert all(b.branch_out == "bn3" and b.block_class == "Bottleneck" for b in blocks)
    # every stage's first block has a projection (1.0 too: 64 -> 256 channels)
    assert [b.name for b in blocks if b.downsample] == ["1.0", "2.0", "3.0", "4.0"]
    layers = study_layers(blocks, ["1.1", "2.0"], o_relu="pre")
    assert list(layers) == [
        "layer1.0.prerelu_out",
        "layer1.1.bn3",
        "layer1.1.prerelu_out",
        "layer2.0.downsample.1",
        "layer2.0.bn3",
        "layer2.0.prerelu_out",
    ]
    with pytest.raises(BlockError, match="ends in bn3, not bn2"):
        parse_layer(blocks, "layer2.1.bn2")


@pytest.mark.parametrize(
    "layer", ["layer1.1.bn3", "layer2.0.downsample.1", "layer2.0.bn3", "layer2.1.prerelu_out", "layer3.0.bn3"]
)
def test_receptive_field_crop_of_bottleneck_layers(resnet50, layer):
    model, _ = resnet50
    blocks = model_blocks(model)
    ref = parse_layer(blocks, layer)
    path = _conv_path(model, blocks, ref)
    # stem (7x7/2, maxpool 3x3/2), then per block conv1 1x1, conv2 3x3 (the stride: v1.5), conv3 1x1
    assert path[:5] == [(7, 2, 3), (3, 2, 1), (1, 1, 0), (3, 1, 1), (1, 1, 0)]
    blocks_on_path = (len(path) - 2) // 3
    assert len(path) == 2 + 3 * blocks_on_path and blocks_on_path == [b.name for b in blocks].index(ref.block) + 1
    if not ref.block.startswith("1."):  # layer2.0: stride 2 on conv2, the 3x3
        assert path[2 + 3 * 3 : 2 + 3 * 4] == [(1, 1, 0), (3, 2, 1), (1, 1, 0)]
    for size in (224, 230) if layer == "layer1.1.bn3" else (224,):  # 230: a random-scaled j<4 input
        plan = verify_plan(model, blocks, ref, size, "intended")
        assert plan is not None and plan.size < size
        # independent check: the centre of the full map equals the crop's centre, every channel
        x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size + 7))
        with torch.no_grad():
            full = block_taps(model, x, [ref])[ref]
            part = block_taps(model, x[..., plan.y0 : plan.y0 + plan.size, plan.y0 : plan.y0 + plan.size], [ref])[ref]
        c = full.shape[-1] // 2
        torch.testing.assert_close(part[0, :, plan.center, plan.center], full[0, :, c, c], atol=1e-4, rtol=1e-4)


def test_default_jitter_per_stage_for_any_block_count():
    by_arch = {
        arch: {b.name: default_jitter(b) for b in structure(arch)} for arch in ("resnet18", "resnet34", "resnet101")
    }
    assert by_arch["resnet18"] == {"1.0": 0, "1.1": 0, "2.0": 0, "2.1": 4, "3.0": 4, "3.1": 16, "4.0": 16, "4.1": 16}
    r34 = by_arch["resnet34"]
    assert {r34[b] for b in ("1.0", "1.1", "1.2", "2.0")} == {0}
    assert {r34[b] for b in ("2.1", "2.2", "2.3", "3.0")} == {4}
    assert {r34[b] for b in ("3.1", "3.5", "4.0", "4.2")} == {16}
    r101 = by_arch["resnet101"]
    # "3.10" and "3.20" are not first blocks of their stage
    assert r101["3.0"] == 4 and r101["3.10"] == r101["3.20"] == r101["3.22"] == 16 and r101["2.3"] == 4


def test_weight_magnitudes_read_bn3_and_conv3(resnet50):
    model, _ = resnet50
    blocks = model_blocks(model)
    info = next(b for b in blocks if b.name == "1.1")
    saved = model.layer1[1].bn3.weight[200].item()
    with torch.no_grad():
        model.layer1[1].bn3.weight[200] = -0.75  # channel 200 exists in bn3/conv3 (256), not in bn2/conv2 (64)
    try:
        gamma, w = weight_magnitudes(model, info, [0, 200])
    finally:
        with torch.no_grad():
            model.layer1[1].bn3.weight[200] = saved
    assert gamma[1] == pytest.approx(0.75)
    np.testing.assert_allclose(w, model.layer1[1].conv3.weight[[0, 200]].abs().mean(dim=(1, 2, 3)).double().numpy())


def test_resnet50_weights_enum_and_checkpoint_paths(tmp_path, monkeypatch, offline_hub, resnet50):
    model, identity = resnet50
    # random weights rebuild from the documented recipe
    import torchvision

    torch.manual_seed(0)
    assert state_dict_sha256(torchvision.models.resnet50(weights=None).state_dict()) == identity.state_dict_sha256
    assert identity.label == "resnet50 RANDOM WEIGHTS (random:0, not pretrained)"
    # IMAGENET1K_V2 exists for resnet50 (not for resnet18/34): offline, the message names its file
    with pytest.raises(WeightsError) as err:
        W.load_model("resnet50", "IMAGENET1K_V2")
    assert "resnet50-11ad3fa6.pth" in str(err.value) and "download failed" in str(err.value)
    with pytest.raises(WeightsError, match="not a weights set of resnet34; torchvision offers: IMAGENET1K_V1\\."):
        W.load_model("resnet34", "IMAGENET1K_V2")
    # a hub-cache file that is not torchvision's is refused against the published prefix
    cached = TW.hub_checkpoint_path(torchvision.models.ResNet50_Weights.IMAGENET1K_V2.url)
    cached.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), cached)
    with pytest.raises(WeightsError, match="expected 11ad3fa6 for resnet50-11ad3fa6.pth: the file is corrupt"):
        W.load_model("resnet50", "IMAGENET1K_V2")
    # a checkpoint path named like V1 is checked against V1's prefix; a renamed file against all
    path = tmp_path / "resnet50-0676ba61.pth"
    path.write_bytes(cached.read_bytes())
    with pytest.raises(WeightsError, match="expected 0676ba61"):
        W.load_model("resnet50", str(path))
    renamed = tmp_path / "mine.pth"
    renamed.write_bytes(cached.read_bytes())
    with pytest.raises(
        WeightsError,
        match="matches none of torchvision's resnet50 checkpoints \\(resnet50-0676ba61.pth, resnet50-11ad3fa6.pth\\)",
    ):
        W.load_model("resnet50", str(renamed))
    # the accept path (a file whose digest is the published one), recorded like resnet18's
    digest = file_sha256(cached)
    monkeypatch.setitem(TW.KNOWN_SHA256, "resnet50-11ad3fa6.pth", digest)
    loaded, ident = W.load_model("resnet50", "IMAGENET1K_V2")
    assert ident.kind == "pretrained" and ident.arch == "resnet50" and ident.file_sha256 == digest
    assert ident.state_dict_sha256 == identity.state_dict_sha256
    assert ident.label == f"resnet50 IMAGENET1K_V2 (sha256 {identity.state_dict_sha256[:12]})"


def test_study_plan_and_figure_blocks_of_deeper_resnets(sample_dir):
    def study(arch, **s):
        return StudyPlan(validate_config({"model": {"arch": arch}, "study": s, "dataset": {"path": str(sample_dir)}}))

    r50 = study("resnet50")
    assert len(r50.study_blocks) == 15 and r50.study_blocks[0] == "1.1" and r50.study_blocks[-1] == "4.2"
    assert [name for name in r50.layers if ".bn" in name] == [f"layer{b}.bn3" for b in r50.study_blocks]
    assert r50.block_info("2.0").channels == 512 and r50.block_info("4.2").channels == 2048
    # Figs 3/4: the first simple block of every stage but the last, in any depth
    assert fig3_fig4_blocks(r50) == ["1.1", "2.1", "3.1"]
    assert fig3_fig4_blocks(study("resnet152")) == ["1.1", "2.1", "3.1"]
    assert fig3_fig4_blocks(study("resnet18")) == ["1.1", "2.1", "3.1"]
    assert fig3_fig4_blocks(study("resnet34", blocks=["2.2", "2.3", "4.2"])) == ["2.2"]
    # Fig 2: one row per stage for resnet34's 15 studied blocks (3-4-6-3 minus 1.0), 6 columns
    rows, cols, slots = table_figures.fig2_layout(study("resnet34").study_blocks)
    assert (rows, cols) == (4, 6)
    assert [slots[b] for b in ("1.1", "2.0", "3.0", "3.5", "4.0", "4.2")] == [0, 6, 12, 17, 18, 20]
    rows, cols, slots = table_figures.fig2_layout(study("resnet152").study_blocks)
    assert cols == 6 and rows == 1 + 2 + 6 + 1 and slots["3.35"] == 6 * 9 - 1 and slots["4.0"] == 6 * 9
    assert len(set(slots.values())) == 49


def test_demo_resnet50_dry_run(sample_dir, tmp_path):
    proc = smk(
        "-n",
        "--cores",
        "2",
        "--configfile",
        "demo-resnet50.yaml",
        "--config",
        f"results={tmp_path}",
        f"dataset={{path: {sample_dir}}}",
        timeout=300,
    )
    out = proc.stdout
    assert f"{tmp_path}/fv/layer4.2.bn3/c0000-0063" in out and f"{tmp_path}/fv/layer1.1.bn3/c0000-0063" in out
    assert f"{tmp_path}/analysis/3.5/fv_table.csv" in out and f"{tmp_path}/summary.json" in out
    assert "compare_models" not in out  # no runs listed, no comparison
