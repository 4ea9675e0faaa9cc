"""Every residual family beyond ResNet: block enumeration, names, and I/B/O taps against hand
forwards of each block written out here module by module (random weights, eval mode, CPU)."""

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops.misc import SqueezeExcitation

from resstream.model import torchvision_weights as TW
from resstream.model.blocks import (
    O_POST,
    O_PRE,
    B,
    D,
    TapRef,
    X,
    default_study_blocks,
    layer_name,
    parse_layer,
    role_tap,
)
from resstream.model.checkpoint_files import WeightsError, file_sha256
from resstream.model.taps import block_taps
from resstream.model.walk import model_blocks
from resstream.model.weights_identity import state_dict_sha256
from resstream.model.weights_spec import check_weights_spec


def random_model(arch: str) -> nn.Module:
    """A model whose norms and layer scales are not the identity (random running stats, affine)."""
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            if isinstance(m, torchvision.models.convnext.CNBlock):
                m.layer_scale.copy_(torch.rand(m.layer_scale.shape, generator=gen) + 0.5)
    return model


# --- hand forwards: no in-place op, every norm read from its module -------------------------------


def bn(m: nn.BatchNorm2d, h):
    return (h - m.running_mean[:, None, None]) / torch.sqrt(m.running_var[:, None, None] + m.eps) * m.weight[
        :, None, None
    ] + m.bias[:, None, None]


def conv(m: nn.Conv2d, h):
    return F.conv2d(h, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups)


def cna(seq, h, act=None):
    """A Conv2dNormActivation ``[conv, norm(, act)]`` with its activation written out."""
    h = bn(seq[1], conv(seq[0], h))
    return act(h) if act is not None else h


def se(m: SqueezeExcitation, h, act, gate):
    s = h.mean(dim=(2, 3), keepdim=True)
    return gate(conv(m.fc2, act(conv(m.fc1, s)))) * h


def ref_resnext(blk, x):
    h = F.relu(bn(blk.bn1, conv(blk.conv1, x)))
    h = F.relu(bn(blk.bn2, conv(blk.conv2, h)))
    b = bn(blk.bn3, conv(blk.conv3, h))
    i = bn(blk.downsample[1], conv(blk.downsample[0], x)) if blk.downsample is not None else x
    return {"I": i, "B": b, "O_pre": b + i, "O_post": F.relu(b + i)}


def ref_regnet(blk, x):
    f = blk.f
    h = cna(f.b, cna(f.a, x, F.relu), F.relu)
    if "se" in f._modules:
        h = se(f.se, h, F.relu, torch.sigmoid)
    b = cna(f.c, h)
    i = cna(blk.proj, x) if blk.proj is not None else x
    return {"I": i, "B": b, "O_pre": i + b, "O_post": F.relu(i + b)}


def ref_convnext(blk, x):
    dw, _, ln, fc1, _, fc2, _ = blk.block
    h = conv(dw, x).permute(0, 2, 3, 1)
    mu, var = h.mean(-1, keepdim=True), h.var(-1, unbiased=False, keepdim=True)
    h = (h - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias
    h = F.gelu(h @ fc1.weight.T + fc1.bias) @ fc2.weight.T + fc2.bias
    b = blk.layer_scale * h.permute(0, 3, 1, 2)
    return {"I": x, "B": b, "O_post": x + b}


def ref_mnv2(blk, x):
    mods, h = list(blk.conv), x
    for m in mods[:-2]:
        h = cna(m, h, lambda t: t.clamp(0, 6))
    b = bn(mods[-1], conv(mods[-2], h))
    return {"I": x, "B": b, "O_post": x + b} if blk.use_res_connect else {"O_post": b}


def ref_mnv3(blk, x):
    mods, h = list(blk.block), x
    for m in mods[:-1]:
        if isinstance(m, SqueezeExcitation):
            h = se(m, h, F.relu, lambda t: (t + 3).clamp(0, 6) / 6)
        else:
            h = cna(m, h, (lambda t: t * (t + 3).clamp(0, 6) / 6) if isinstance(m[2], nn.Hardswish) else F.relu)
    b = cna(mods[-1], h)
    return {"I": x, "B": b, "O_post": x + b} if blk.use_res_connect else {"O_post": b}


def ref_mbconv(blk, x):
    silu = lambda t: t * torch.sigmoid(t)  # noqa: E731
    mods, h = list(blk.block), x
    for m in mods[:-1]:
        h = se(m, h, silu, torch.sigmoid) if isinstance(m, SqueezeExcitation) else cna(m, h, silu)
    b = cna(mods[-1], h)
    return {"I": x, "B": b, "O_post": x + b} if blk.use_res_connect else {"O_post": b}


def ref_fused(blk, x):
    silu = lambda t: t * torch.sigmoid(t)  # noqa: E731
    mods = list(blk.block)
    b = cna(mods[1], cna(mods[0], x, silu)) if len(mods) == 2 else cna(mods[0], x, silu)  # expand 1: ends in SiLU
    return {"I": x, "B": b, "O_post": x + b} if blk.use_res_connect else {"O_post": b}


# arch -> (hand forward, blocks checked: with a skip projection, plain, without a sum)
CASES = {
    "resnext50_32x4d": (ref_resnext, ["2.0", "2.1"]),
    "regnet_y_400mf": (ref_regnet, ["trunk_output.block2.block2-0", "trunk_output.block2.block2-1"]),
    "regnet_x_400mf": (ref_regnet, ["trunk_output.block2.block2-1"]),
    "convnext_tiny": (ref_convnext, ["features.1.1", "features.3.0"]),
    "mobilenet_v2": (ref_mnv2, ["features.5", "features.4"]),
    "mobilenet_v3_large": (ref_mnv3, ["features.1", "features.5", "features.12"]),
    "efficientnet_b0": (ref_mbconv, ["features.2.1", "features.2.0"]),
    "efficientnet_v2_s": (ref_fused, ["features.1.1", "features.2.1"]),
}


def block_input(model, module_path, x):
    """The block's input in a plain forward, read by a bare torch pre-hook."""
    seen = {}
    h = model.get_submodule(module_path).register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0].clone()))
    with torch.no_grad():
        model(x)
    h.remove()
    return seen["x"]


@pytest.mark.parametrize("arch", list(CASES))
def test_taps_match_a_hand_forward_of_each_block(arch):
    ref_fn, names = CASES[arch]
    model = random_model(arch)
    blocks = model_blocks(model)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    last_module = list(model.children())[-1]
    calls = []
    last_module.register_forward_hook(lambda *a: calls.append(1))
    for name in names:
        info = next(b for b in blocks if b.name == name)
        module = model.get_submodule(info.module)
        with torch.no_grad():
            ref = ref_fn(module, block_input(model, info.module, x))
            assert torch.allclose(ref["O_post"], module(block_input(model, info.module, x)), atol=1e-5, rtol=1e-5)
        calls.clear()
        if not info.has_sum:
            assert "B" not in ref
            continue
        tensors = [X, B, O_POST] + [O_PRE] * bool(info.after_sum) + [D] * info.downsample
        with torch.no_grad():
            taps = block_taps(model, x, [TapRef(name, t) for t in tensors], blocks=blocks)
        assert not calls, "the forward went on past the deepest tap"
        atol = 1e-5 * max(1.0, float(ref["O_post"].abs().max()))
        torch.testing.assert_close(taps[TapRef(name, B)], ref["B"], atol=atol, rtol=1e-5)
        torch.testing.assert_close(taps[TapRef(name, O_POST)], ref["O_post"], atol=atol, rtol=1e-5)
        skip = taps[TapRef(name, D)] if info.downsample else taps[TapRef(name, X)]
        torch.testing.assert_close(skip, ref["I"], atol=atol, rtol=1e-5)
        if info.after_sum:
            torch.testing.assert_close(taps[TapRef(name, O_PRE)], ref["O_pre"], atol=atol, rtol=1e-5)
        # the branch really contributes (a held reference to B would have become O)
        assert not torch.allclose(taps[TapRef(name, B)], taps[TapRef(name, O_POST)])


EXPECTED_SUMS = {  # blocks with a residual sum, from torchvision's use_res_connect rule (families guide)
    "mobilenet_v2": [f"features.{i}" for i in (3, 5, 6, 8, 9, 10, 12, 13, 15, 16)],
    "mobilenet_v3_small": [f"features.{i}" for i in (3, 5, 6, 8, 10, 11)],
}


def test_blocks_without_a_sum_are_listed_and_skipped_by_default():
    from resstream.model.structure import structure

    for arch, summed in EXPECTED_SUMS.items():
        blocks = list(structure(arch))
        assert [b.name for b in blocks if b.has_sum] == summed
        assert default_study_blocks(blocks) == summed  # features.1 is not a first block with a sum
    b0 = list(structure("efficientnet_b0"))
    assert len(b0) == 16 and sum(b.has_sum for b in b0) == 9
    assert all(not b.has_sum for b in b0 if b.name.endswith(".0"))
    v3 = list(structure("mobilenet_v3_large"))
    assert v3[0].name == "features.1" and v3[0].has_sum and "features.1" not in default_study_blocks(v3)


def test_names_stages_and_shared_layers_follow_the_module_tree():
    from resstream.model.structure import map_sizes, structure

    cn = list(structure("convnext_tiny"))
    assert [b.name for b in cn][:4] == ["features.1.0", "features.1.1", "features.1.2", "features.3.0"]
    assert [sum(b.stage == s for b in cn) for s in (1, 2, 3, 4)] == [3, 3, 9, 3]
    first3 = next(b for b in cn if b.name == "features.3.0")
    # I of a stage's first block is the downsampling layer's output (outside any block)
    assert layer_name(cn, role_tap(cn, "features.3.0", "I")) == "features.2" and first3.input_from == "features.2"
    assert parse_layer(cn, "features.2") == TapRef("features.3.0", X)
    # I of the next block is the previous block's O layer: shared, as in the paper
    assert role_tap(cn, "features.3.1", "I") == TapRef("features.3.0", O_POST)
    assert layer_name(cn, role_tap(cn, "features.3.1", "B")) == "features.3.1.stochastic_depth"
    assert [b.in_stride for b in cn if b.index == 0 or cn[b.index - 1].stage != b.stage] == [
        4,
        8,
        16,
        32,
    ]  # stages' first
    rg = list(structure("regnet_y_400mf"))
    assert [b.name for b in rg if b.downsample] == [f"trunk_output.block{s}.block{s}-0" for s in (1, 2, 3, 4)]
    assert layer_name(rg, role_tap(rg, "trunk_output.block2.block2-0", "I")) == "trunk_output.block2.block2-0.proj.1"
    assert (
        layer_name(rg, role_tap(rg, "trunk_output.block2.block2-1", "O")) == "trunk_output.block2.block2-1.prerelu_out"
    )
    assert map_sizes("convnext_tiny")["features.7.2"] == (7, 7) and map_sizes("convnext_tiny")["features.2"] == (28, 28)
    mn = list(structure("mobilenet_v2"))
    assert sorted({b.stage for b in mn}) == [1, 2, 3, 4, 5]  # stride groups 2, 4, 8, 16, 32


def test_o_relu_post_is_refused_where_nothing_follows_the_sum():
    from resstream.base.errors import UserError
    from resstream.workflow.config import validate_config
    from resstream.workflow.plan import StudyPlan

    for arch in ("convnext_tiny", "mobilenet_v2", "efficientnet_b0"):
        with pytest.raises(UserError) as err:
            StudyPlan(validate_config({"model": {"arch": arch}, "study": {"o_relu": "post"}}))
        assert str(err.value).startswith(
            "study.o_relu: post asks for O after the nonlinearity that follows the residual sum"
        )
        assert str(err.value).endswith("Fix: set study.o_relu: pre") and "\n" not in str(err.value)
    # RegNet has a ReLU after its sum: post is read there
    study = StudyPlan(validate_config({"model": {"arch": "regnet_x_400mf"}, "study": {"o_relu": "post"}}))
    assert study.block_layers("trunk_output.block2.block2-1")["O"] == "trunk_output.block2.block2-1"
    with pytest.raises(UserError, match="block 'features.4' of mobilenet_v2 has no residual sum"):
        StudyPlan(
            validate_config({"model": {"arch": "mobilenet_v2"}, "study": {"blocks": ["features.3", "features.4"]}})
        )


@pytest.mark.parametrize(
    "arch, says",
    [
        ("vgg16", "model.arch 'vgg16' is a torchvision model without residual blocks of a supported family"),
        ("alexnet", "model.arch 'alexnet' is a torchvision model without residual blocks of a supported family"),
        ("resnet19", "model.arch 'resnet19' is not a torchvision model resstream knows"),
    ],
)
def test_other_models_are_refused_before_any_job_with_one_line(tmp_path, sample_dir, arch, says):
    from helpers.workflow import one_line, smk

    proc = smk(
        "-n",
        "--cores",
        "1",
        "--config",
        f"results={tmp_path}",
        f"dataset={{path: {sample_dir}}}",
        f"model={{arch: {arch}, weights: 'random:0'}}",
        check=False,
    )
    line = one_line(proc, stdout=True)
    assert proc.returncode != 0
    assert line.startswith(f"resstream: {says}. Fix: choose an arch of a supported family: ResNet (")
    for family in ("ResNeXt (", "RegNet (", "ConvNeXt (", "MobileNetV2 (", "MobileNetV3 (", "EfficientNet ("):
        assert family in line
    assert "rule " not in proc.stdout + proc.stderr  # no job was planned


def test_o_relu_post_stops_the_workflow_before_any_job(tmp_path, sample_dir):
    from helpers.workflow import one_line, smk

    proc = smk(
        "-n",
        "--cores",
        "1",
        "--config",
        f"results={tmp_path}",
        f"dataset={{path: {sample_dir}}}",
        "model={arch: convnext_tiny, weights: 'random:0'}",
        "study={o_relu: post}",
        check=False,
    )
    assert proc.returncode != 0 and one_line(proc, stdout=True).startswith("resstream: study.o_relu: post asks")
    assert "rule " not in proc.stdout + proc.stderr


# --- receptive-field crop: taken where exact, refused (and logged) where a layer mixes the whole map ---


def centre_of(model, blocks, ref, x):
    with torch.no_grad():
        out = block_taps(model, x, [ref], blocks=blocks)[ref]
    return out[0, :, out.shape[-2] // 2, out.shape[-1] // 2]


@pytest.mark.parametrize(
    "arch, layer",
    [
        ("mobilenet_v3_large", "features.3.block"),
        ("convnext_tiny", "features.1.1.stochastic_depth"),
        ("efficientnet_v2_s", "features.2.1.block"),
    ],
)
def test_the_crop_is_taken_where_exact_and_agrees_with_the_full_forward(arch, layer):
    from resstream.model.receptive_field import CropPlanner, crop_refusal

    model = random_model(arch)
    blocks = model_blocks(model)
    ref = parse_layer(blocks, layer)
    assert crop_refusal(model, blocks, ref) is None
    plan = CropPlanner(model, blocks, ref, "intended").plan(224)
    assert plan is not None and plan.size < 224
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    full = centre_of(model, blocks, ref, x)
    with torch.no_grad():
        part = block_taps(
            model, x[..., plan.y0 : plan.y0 + plan.size, plan.y0 : plan.y0 + plan.size], [ref], blocks=blocks
        )[ref]
    torch.testing.assert_close(
        part[0, :, plan.center, plan.center], full, atol=1e-5 * float(full.abs().max()), rtol=1e-4
    )


@pytest.mark.parametrize(
    "arch, layer, se_path",
    [
        ("regnet_y_400mf", "trunk_output.block2.block2-1.f.c", "trunk_output.block1.block1-0.f.se"),
        ("mobilenet_v3_large", "features.5.block", "features.4.block.2"),
    ],
)
def test_the_crop_falls_back_to_the_full_forward_after_a_squeeze_excitation(arch, layer, se_path, caplog):
    import logging

    from resstream.model.receptive_field import CropPlanner, _numeric_mismatch, _plan, crop_refusal

    model = random_model(arch)
    blocks = model_blocks(model)
    ref = parse_layer(blocks, layer)
    # the structure says why: the first squeeze-excitation on the path
    assert crop_refusal(model, blocks, ref) == f"{se_path} (SqueezeExcitation) mixes the whole map"
    with caplog.at_level(logging.INFO, logger="resstream.model.receptive_field"):
        planner = CropPlanner(model, blocks, ref, "intended")
        assert [planner.plan(size) for size in (224, 226, 230)] == [None] * 3  # every size: the structure refuses
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        f"receptive-field crop of {ref.block}:{ref.tensor} not used ({se_path} (SqueezeExcitation) "
        f"mixes the whole map): full forward"
    ]  # once, not once per size
    # the numeric check alone catches it too: the cropped forward's centre differs from the full one
    plan = _plan(model, blocks, ref, 224)
    assert plan is not None, "the conv-path window is small enough to be tried"
    assert _numeric_mismatch(model, blocks, ref, 224, "intended", plan) is not None
    # and it is right to: computed here independently, the crop changes the centre activations
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    full = centre_of(model, blocks, ref, x)
    part = centre_of(model, blocks, ref, x[..., plan.y0 : plan.y0 + plan.size, plan.y0 : plan.y0 + plan.size])
    assert float((part - full).abs().max()) > 1e-4 * float(full.abs().max())


# --- weights: each family's torchvision enum, its hub file checked by hash, custom checkpoints -------


@pytest.mark.parametrize(
    "arch, name, file",
    [
        ("resnext50_32x4d", "IMAGENET1K_V2", "resnext50_32x4d-1a0047aa.pth"),
        ("regnet_y_400mf", "IMAGENET1K_V1", "regnet_y_400mf-c65dace8.pth"),
        ("convnext_tiny", "IMAGENET1K_V1", "convnext_tiny-983f1562.pth"),
        ("mobilenet_v3_large", "IMAGENET1K_V2", "mobilenet_v3_large-5c1a4163.pth"),
        ("efficientnet_v2_s", "IMAGENET1K_V1", "efficientnet_v2_s-dd5fe13b.pth"),
    ],
)
def test_hub_weights_of_each_family_are_checked_by_their_published_hash(tmp_path, monkeypatch, arch, name, file):
    from resstream.model import weights as W

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("must not download"))
    assert W.missing_hub_file(arch, name) == tmp_path / "hub" / "checkpoints" / file
    model, _ = W.load_model(arch, "random:1")
    cached = tmp_path / "hub" / "checkpoints" / file
    cached.parent.mkdir(parents=True)
    torch.save(model.state_dict(), cached)
    with pytest.raises(WeightsError, match="corrupt or not torchvision's"):
        W.load_model(arch, name, allow_download=False)
    monkeypatch.setitem(TW.KNOWN_SHA256, file, file_sha256(cached))  # as if it were the published file
    loaded, ident = W.load_model(arch, name, allow_download=False)
    assert ident.weights_source == "torchvision" and ident.state_dict_sha256 == state_dict_sha256(model.state_dict())
    with pytest.raises(WeightsError, match="is not a weights set of"):
        check_weights_spec(arch, "IMAGENET1K_V9")


def test_custom_checkpoints_of_other_families_fit_their_classifier(tmp_path):
    from resstream.model import weights as W

    for arch, head in (
        ("convnext_tiny", "classifier.2"),
        ("regnet_y_400mf", "fc"),
        ("mobilenet_v3_small", "classifier.3"),
    ):
        model, _ = W.load_model(arch, "random:2")
        sd = model.state_dict()
        width = sd[f"{head}.weight"].shape[1]
        sd[f"{head}.weight"], sd[f"{head}.bias"] = torch.ones(10, width), torch.zeros(10)
        path = tmp_path / f"{arch}_ten.pth"
        torch.save(sd, path)
        W.check_weights_available(arch, str(path), allow_download=False, checkpoint="any")  # built on the meta device
        loaded, ident = W.load_model(arch, str(path), checkpoint="any")
        assert loaded.get_submodule(head).weight.shape == (10, width) and ident.kind == "custom"


def test_jitter_follows_the_input_stride_and_the_card_lists_every_block():
    from resstream.model.card import card_facts
    from resstream.model.structure import structure
    from resstream.workflow.config import validate_config
    from resstream.workflow.plan import StudyPlan, default_jitter

    expected = {  # 0 while the block's input is at stride <= 4, 4 at stride 8, 16 from stride 16
        "convnext_tiny": {
            "features.1.1": 0,
            "features.3.0": 4,
            "features.3.2": 4,
            "features.5.0": 16,
            "features.7.2": 16,
        },
        "mobilenet_v2": {"features.3": 0, "features.5": 4, "features.6": 4, "features.8": 16, "features.16": 16},
        "efficientnet_v2_s": {"features.1.1": 0, "features.2.1": 0, "features.3.1": 4, "features.4.1": 16},
        "regnet_x_400mf": {
            "trunk_output.block2.block2-0": 0,
            "trunk_output.block2.block2-1": 4,
            "trunk_output.block3.block3-0": 4,
            "trunk_output.block3.block3-1": 16,
        },
        "resnet50": {"1.1": 0, "2.0": 0, "2.1": 4, "3.0": 4, "3.1": 16, "4.0": 16},
    }
    for arch, jitters in expected.items():
        blocks = {b.name: b for b in structure(arch)}
        assert {name: default_jitter(blocks[name]) for name in jitters} == jitters, arch
    study = StudyPlan(validate_config({"model": {"arch": "mobilenet_v2"}}))
    card = card_facts(study)
    assert card["family"] == "MobileNetV2" and card["blocks_without_residual_sum"] == [
        f"features.{i}" for i in (1, 2, 4, 7, 11, 14, 17)
    ]
    rows = {row["block"]: row for row in card["model_blocks"]}
    assert rows["features.4"] == {
        "block": "features.4",
        "module": "features.4",
        "class": "InvertedResidual",
        "stage": 3,
        "residual_sum": False,
        "after_sum": "none",
        "studied": False,
    }
    assert rows["features.5"]["studied"] and rows["features.5"]["residual_sum"]
    assert {row["layer"] for row in card["layers"] if row["block"] == "features.5"} == {
        "features.4",
        "features.5.conv",
        "features.5",
    }


def test_the_command_line_lists_families_and_blocks_without_a_sum(capsys):
    from resstream.cli import main

    assert main(["families"]) == 0
    out = capsys.readouterr().out
    lines = out.split("timm residual models refused")[0].splitlines()
    assert [line.split(":")[0].split(" (")[0] for line in lines[::2]] == [
        "ResNet",
        "ResNeXt",
        "RegNet",
        "ConvNeXt",
        "MobileNetV2",
        "MobileNetV3",
        "EfficientNet",
        "timm ResNet",
        "timm ResNetV2",
        "timm ConvNeXt",
        "timm RegNet",
        "timm EfficientNet/MobileNet",
        "timm Res2Net",
        "timm ResNeSt",
        "timm CSPNet/DarkNet",
        "timm ByobNet",
    ]
    assert "B = stochastic_depth = layer_scale * block(x)" in out
    assert main(["info", "mobilenet_v2"]) == 0
    info = capsys.readouterr().out.splitlines()
    row = {line.split()[0]: line.split() for line in info[2:]}
    assert row["features.4"][3:6] == ["-", "-", "no"] and row["features.5"][3:6] == [
        "features.4",
        "features.5.conv",
        "features.5",
    ]
