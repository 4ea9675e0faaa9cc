"""timm models: every supported block kind's taps sum to its output (O = I + B, random weights, a
small input), the recorded tables match the networks, planning imports neither torch nor timm, and
the refusals and weights sources of a timm arch."""

import json
import subprocess
import sys

import pytest
import torch

from resstream.base.errors import ConfigError, UserError
from resstream.model import timm_models
from resstream.model.blocks import O_POST, B, D, TapRef, X
from resstream.model.taps import block_taps
from resstream.model.walk import model_blocks

# (timm model, create_model kwargs) -> the block classes it holds with a residual sum
BLOCK_KINDS = {
    ("resnet18", ()): {"BasicBlock"},
    ("resnet18", (("drop_path_rate", 0.1),)): {"BasicBlock"},  # B read at drop_path
    ("seresnext26d_32x4d", ()): {"Bottleneck"},  # se as B, avg_down shortcut
    ("resnetaa34d", ()): {"BasicBlock"},  # anti-aliasing
    ("resnetv2_18", ()): {"PreActBasic"},
    ("resnetv2_50x1_bit", ()): {"PreActBottleneck"},
    ("resnetv2_50", (("preact", False),)): {"Bottleneck"},
    ("convnext_atto", ()): {"ConvNeXtBlock"},
    ("regnety_002", ()): {"Bottleneck"},
    ("mobilenetv3_small_050", ()): {"InvertedResidual"},
    ("efficientnet_b0", ()): {"InvertedResidual"},
    ("efficientnetv2_rw_t", ()): {"ConvBnAct", "EdgeResidual", "InvertedResidual"},
    ("mobilenetv4_conv_small", ()): {"UniversalInvertedResidual"},
    ("res2net50_26w_4s", ()): {"Bottle2neck"},
    ("resnest14d", ()): {"ResNestBottleneck"},  # SplitAttn conv2, avd pooling, avg_down shortcut
    ("resnest14d", (("drop_path_rate", 0.1),)): {"ResNestBottleneck"},  # its drop_path is on the input: B stays bn3
    ("cspresnet50", ()): {"BottleneckBlock"},  # cross stage: blocks read half of conv_exp; LeakyReLU after the sum
    ("cs3darknet_s", ()): {"DarkBlock"},  # CrossStage3
    ("darknet17", ()): {"DarkBlock"},  # DarkStage (no cross-stage split)
    ("cs3edgenet_x", ()): {"EdgeBlock"},
    ("test_byobnet", ()): {"EdgeBlock", "DarkBlock", "BasicBlock", "BottleneckBlock"},  # avg shortcuts, se
    ("resnet51q", ()): {"BottleneckBlock"},  # SiLU after the sum, conv1x1 shortcuts
    ("regnetz_b16", ()): {"BottleneckBlock"},  # linear_out: nothing after the sum; blocks without shortcut: no sum
}
# the modules that may apply the nonlinearity after the sum (the block's last of them does): its input is the sum
AFTER_SUM_MODULES = ("relu", "act", "act2", "act3")


def _true_sums(model, blocks) -> tuple[dict, list]:
    """Each summing block's sum, read independently of the taps: the input of the activation that
    follows the sum, or else the block's output (nothing follows the sum)."""
    sums, handles = {}, []
    for info in blocks:
        if not info.has_sum:
            continue
        module = model.get_submodule(info.module)
        if info.after_sum:
            act = _after_sum_module(module)
            handles.append(act.register_forward_pre_hook(lambda m, a, n=info.name: sums.__setitem__(n, a[0].clone())))
        else:
            handles.append(module.register_forward_hook(lambda m, a, o, n=info.name: sums.__setitem__(n, o.clone())))
    return sums, handles


def _after_sum_module(block):
    """The block's nonlinearity after the sum (a shared ``relu`` is called last on the sum)."""
    return getattr(block, [a for a in AFTER_SUM_MODULES if hasattr(block, a)][-1])


def randomise_scales(model) -> None:
    """timm initialises the last norm of a residual branch to zero (``zero_init_last``) and layer
    scales to 1e-6, which would make every B zero: give norms and layer scales random values."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rpartition(".")[2]
            if p.dim() == 1 and leaf in ("weight", "gamma"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.dim() == 1 and leaf == "bias":
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


@pytest.mark.parametrize(
    "name,kwargs", list(BLOCK_KINDS), ids=lambda v: str(v) if isinstance(v, str) else "-".join(map(str, v))
)
def test_every_timm_block_kind_sums_its_taps(name, kwargs):
    torch.manual_seed(0)
    model = timm_models.build(name, **dict(kwargs))
    randomise_scales(model)
    blocks = model_blocks(model)
    summing = [b for b in blocks if b.has_sum]
    assert {b.block_class for b in summing} == BLOCK_KINDS[(name, kwargs)]
    taps = [TapRef(b.name, t) for b in summing for t in (D if b.downsample else X, B, O_POST)]
    sums, handles = _true_sums(model, blocks)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = block_taps(model, x, taps, blocks=blocks)
        model(x)  # block_taps stops after the deepest tap: the hooks above saw the same forward
    for h in handles:
        h.remove()
    for b in summing:
        i, branch, out = (got[TapRef(b.name, t)] for t in (D if b.downsample else X, B, O_POST))
        total = sums[b.name]
        scale = total.abs().max().item() + 1e-12
        assert (i + branch - total).abs().max().item() <= 1e-5 * scale, f"{name} {b.name}: O != I + B"
        if b.after_sum:  # the in-place ReLU after `x += shortcut` did not reach the B tap
            act = _after_sum_module(model.get_submodule(b.module))
            assert type(act).__name__ == b.after_sum
            assert (branch < 0).any() and torch.equal(out, act(total.clone()))
        else:
            assert torch.equal(out, total)


# Blocks whose branch ends in a conv without a norm after it (pre-activation) or in a layer scale: their
# (scale, weight) pair is no "last norm and the conv it normalises".
NO_NORM_AFTER_LAST_CONV = {"PreActBasic", "PreActBottleneck", "ConvNeXtBlock"}


@pytest.mark.parametrize(
    "name",
    [
        "seresnext26d_32x4d",
        "test_byobnet",
        "efficientnet_b0",
        "cspresnet50",
        "res2net50_26w_4s",
        "resnest14d",
        "regnety_002",
        "cs3edgenet_x",
    ],
)
def test_branch_weights_are_the_last_norm_and_the_conv_it_normalises(name):
    """Fig 3's pair: the scale is the last norm's gamma and the weight the conv whose output that norm
    reads, not a squeeze-excitation's 1x1 conv after it (read from a forward, not from the names)."""
    from resstream.model.adapters import branch_weights

    torch.manual_seed(0)
    model = timm_models.build(name)
    seen, handles, pairs = {}, [], {}
    for b in model_blocks(model):
        block = model.get_submodule(b.module)
        if not b.has_sum or b.block_class in NO_NORM_AFTER_LAST_CONV:
            continue
        scale, weight = branch_weights(block)
        owner = {id(p): mod for mod in block.modules() for p in mod.parameters(recurse=False)}
        conv, norm = owner[id(weight)], owner[id(scale)]
        assert weight.shape[0] == scale.shape[0] == b.channels
        handles.append(conv.register_forward_hook(lambda m, a, o, n=b.name: seen.__setitem__((n, "conv"), o.clone())))
        handles.append(
            norm.register_forward_pre_hook(lambda m, a, n=b.name: seen.__setitem__((n, "norm"), a[0].clone()))
        )
        pairs[b.name] = None
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)))
    for h in handles:
        h.remove()
    assert pairs
    for block in pairs:
        assert torch.equal(seen[(block, "conv")], seen[(block, "norm")]), (
            f"{name} {block}: the weight's conv does not feed the norm"
        )


# -- tables, refusals, weights ---------------------------------------------------------------------------


TESTED = [name for models in timm_models.TESTED_MODELS.values() for name in models]


@pytest.mark.parametrize("name", TESTED)
def test_recorded_tables_match_the_network(name):
    recorded = timm_models.recorded(name)
    assert recorded is not None, "timm_tables.json lacks it or was recorded under another timm: make arch-tables"
    live = timm_models.live_table.__wrapped__(name)
    assert recorded == json.loads(json.dumps(live)), "timm_tables.json is stale: make arch-tables"


def test_the_tables_record_exactly_the_tested_models():
    assert list(json.loads(timm_models.TABLES.read_text())["models"]) == TESTED


def test_planning_a_timm_arch_imports_neither_torch_nor_timm():
    code = (
        "import sys; from resstream.model.structure import structure, map_sizes; "
        "from resstream.model.structure import check_arch; "
        "assert check_arch('timm:convnext_tiny.fb_in1k') == 'timm ConvNeXt'; "
        "b = structure('timm:resnet50.a1_in1k'); assert [x.name for x in b][:2] == ['1.0', '1.1']; "
        "assert map_sizes('timm:resnet50')['2.1'] == (28, 28); "
        "assert check_arch('timm:cspresnet50.ra_in1k') == 'timm CSPNet/DarkNet'; "
        "assert [x.after_sum for x in structure('timm:regnetz_b16')][:2] == [None, None]; "
        "assert map_sizes('timm:gernet_s')['stages.1.0'] == (28, 28); "
        "print(sorted(m for m in ('torch', 'timm', 'torchvision') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr[-2000:]


SUPPORTED = (
    "timm ResNet (e.g. timm:resnet18); timm ResNetV2 (e.g. timm:resnetv2_50x1_bit); timm ConvNeXt (e.g. "
    "timm:convnext_tiny); timm RegNet (e.g. timm:regnety_008); timm EfficientNet/MobileNet (e.g. timm:efficientnet_b0); "
    "timm Res2Net (e.g. timm:res2net50_26w_4s); timm ResNeSt (e.g. timm:resnest14d); timm CSPNet/DarkNet (e.g. "
    "timm:cspresnet50); timm ByobNet (e.g. timm:gernet_s)"
)


@pytest.mark.parametrize(
    "arch,module", [("timm:vgg16", "vgg"), ("timm:vit_base_patch16_224.augreg2_in21k_ft_in1k", "vision_transformer")]
)
def test_a_timm_model_without_residual_sum_is_refused_naming_the_families(arch, module):
    from resstream.model.structure import check_arch

    with pytest.raises(ConfigError) as err:
        check_arch(arch)
    assert str(err.value) == (
        f"model.arch '{arch}' is a timm model without residual blocks of a supported family "
        f"(timm.models.{module}). Fix: choose a timm model of a supported family: {SUPPORTED} "
        f"(see: resstream families)"
    )


FIX = f"Fix: choose a timm model of a supported family: {SUPPORTED} (see: resstream families)"
SUM_ONLY_IN_TRAINING = (
    "whose sum ({}) exists only in the training form and is folded into one conv without a sum in the deployed form"
)


@pytest.mark.parametrize(
    "arch,what,why",
    [
        (
            "timm:dla34",
            "model of timm.models.dla",
            "whose Tree feeds each block's skip path in from outside the block and "
            "merges blocks by concatenation (Root), so a block's I is no tap of one residual stream",
        ),
        (
            "timm:repvgg_a0",
            "model with RepVggBlocks",
            SUM_ONLY_IN_TRAINING.format("a BN of the input plus two conv branches"),
        ),
        (
            "timm:mobileone_s0",
            "model with MobileOneBlocks",
            SUM_ONLY_IN_TRAINING.format("a BN of the input plus conv branches"),
        ),
        (
            "timm:regnetv_040",
            "model with PreBottlenecks",
            "whose sum adds B to norm1 of the block input rather than to the "
            "input, so O != I + B for the stream the blocks pass on",
        ),
    ],
)
def test_a_timm_residual_model_the_study_cannot_read_is_refused_naming_why(arch, what, why):
    from resstream.model.structure import check_arch

    with pytest.raises(ConfigError) as err:
        check_arch(arch)
    assert str(err.value) == f"model.arch '{arch}' is a timm {what}, {why}. {FIX}"


def test_an_unknown_tag_and_torchvision_weights_are_refused():
    from resstream.model.structure import check_arch
    from resstream.model.weights_spec import check_weights_spec

    with pytest.raises(ConfigError, match=r"timm has no pretrained tag 'v9' for resnet18\. Fix: use one of a1_in1k, "):
        check_arch("timm:resnet18.v9")
    with pytest.raises(UserError) as err:
        check_weights_spec("timm:resnet18", "IMAGENET1K_V1")
    assert str(err.value) == (
        "model.weights 'IMAGENET1K_V1' does not fit timm:resnet18: a timm model's weights are "
        "'pretrained' (the tag's, through the Hugging Face hub cache), a checkpoint file with "
        "model.checkpoint: any, or random:SEED. Fix: set model.weights: pretrained."
    )


def test_offline_without_cached_weights_stops_naming_the_cache(tmp_path, monkeypatch):
    from resstream.model.weights import check_weights_available

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as err:
        check_weights_available("timm:resnet18.tv_in1k", "pretrained", allow_download=True)
    assert str(err.value) == (
        f"weights timm:resnet18.tv_in1k pretrained are not in the Hugging Face hub cache "
        f"({tmp_path / 'hub' / 'models--timm--resnet18.tv_in1k'}) and HF_HUB_OFFLINE is set. Fix: run once where the "
        f"hub is reachable (without HF_HUB_OFFLINE=1), copy that cache folder here (or point HF_HUB_CACHE at a cache "
        f"holding it), or set model.weights to a local file with model.checkpoint: any; for a test run use "
        f"model.weights: random:0."
    )


def _state(seed: int):
    torch.manual_seed(seed)
    model = timm_models.build("resnet18")
    randomise_scales(model)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def test_pretrained_weights_load_from_the_hub_cache(tmp_path, monkeypatch):
    """A hub cache laid out as huggingface_hub lays it out, holding a file of known tensors."""
    from safetensors.torch import save_file

    from resstream.model.checkpoint_files import file_sha256
    from resstream.model.weights import load_model

    snapshot = tmp_path / "hub" / "models--timm--resnet18.tv_in1k" / "snapshots" / ("ab" * 20)
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("ab" * 20)
    state = _state(1)
    save_file(state, snapshot / "model.safetensors")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, identity = load_model("timm:resnet18.tv_in1k", "pretrained", allow_download=False)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert identity.kind == "timm" and identity.file_sha256 == file_sha256(snapshot / "model.safetensors")
    assert identity.weights_source == "timm" and identity.as_dict()["weights_source"] == "timm"
    assert identity.label == f"timm:resnet18.tv_in1k pretrained (file sha256 {identity.file_sha256[:12]})"
    assert identity.preprocessing["interpolation"] == "bilinear" and identity.timm_model == "resnet18.tv_in1k"


def test_a_checkpoint_of_ones_own_loads_with_checkpoint_any(tmp_path):
    from resstream.model.weights import check_weights_available, load_model

    state = _state(2)
    path = tmp_path / "mine.pth"
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    check_weights_available("timm:resnet18", str(path), allow_download=False, checkpoint="any")
    model, identity = load_model("timm:resnet18", str(path), checkpoint="any")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items()) and identity.kind == "custom"
    with pytest.raises(UserError, match=r"^model.weights mine.pth for timm:resnet18: timm publishes no sha256 list"):
        check_weights_available("timm:resnet18", "mine.pth", allow_download=False)
    wrong = tmp_path / "wrong.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("layer4")}, wrong)
    with pytest.raises(UserError) as err:
        check_weights_available("timm:resnet18", str(wrong), allow_download=False, checkpoint="any")
    assert str(err.value).startswith(f"model.weights checkpoint {wrong} does not load into timm:resnet18 (")
    assert "Missing key(s)" in str(err.value) and "\n" not in str(err.value)
