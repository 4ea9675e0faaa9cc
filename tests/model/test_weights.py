import pytest
import torch

from resstream.model import torchvision_weights as TW
from resstream.model import weights as W
from resstream.model.checkpoint_files import WeightsError, file_sha256
from resstream.model.weights_identity import state_dict_sha256
from resstream.model.weights_spec import check_weights_spec


def test_random_weights_are_reproducible_and_marked():
    m1, id1 = W.load_model("resnet18", "random:7")
    m2, id2 = W.load_model("resnet18", "random:7")
    _, id3 = W.load_model("resnet18", "random:8")
    assert id1.state_dict_sha256 == id2.state_dict_sha256 != id3.state_dict_sha256
    assert id1.weights_source == "random" and "RANDOM" in id1.label
    # the documented recipe rebuilds the same weights: torch.manual_seed(SEED); resnet18(weights=None)
    import torchvision

    torch.manual_seed(7)
    ref = torchvision.models.resnet18(weights=None)
    assert state_dict_sha256(ref.state_dict()) == id1.state_dict_sha256
    assert not m1.training and not any(p.requires_grad for p in m1.parameters())


def saved_random_weights(path, seed=0):
    """resnet18's random weights (``random:SEED``) saved as a plain state dict at ``path``; the model."""
    model, _ = W.load_model("resnet18", f"random:{seed}")
    torch.save(model.state_dict(), path)
    return model


def test_checkpoint_with_wrong_sha256_is_refused(tmp_path):
    path = tmp_path / "resnet18-f37072fd.pth"
    saved_random_weights(path)
    with pytest.raises(WeightsError) as err:
        W.load_model("resnet18", str(path))
    msg = str(err.value)
    assert str(path) in msg and TW.KNOWN_SHA256["resnet18-f37072fd.pth"] in msg


def test_renamed_unknown_checkpoint_is_refused(tmp_path):
    path = tmp_path / "my_weights.pth"
    saved_random_weights(path)
    with pytest.raises(WeightsError, match="matches none of torchvision's resnet18 checkpoints"):
        W.load_model("resnet18", str(path))


def published_checkpoint(tmp_path, monkeypatch):
    """Random weights (seed 3) saved under torchvision's resnet18 file name, with their sha256 made
    the published one."""
    path = tmp_path / "resnet18-f37072fd.pth"
    model = saved_random_weights(path, seed=3)
    monkeypatch.setitem(TW.KNOWN_SHA256, "resnet18-f37072fd.pth", file_sha256(path))
    return path, model


def test_checkpoint_with_published_digest_loads(tmp_path, monkeypatch):
    """The accept path: a file whose sha256 equals the published one loads and is recorded."""
    path, model = published_checkpoint(tmp_path, monkeypatch)
    loaded, ident = W.load_model("resnet18", str(path))
    assert ident.kind == "checkpoint" and ident.weights_source == "torchvision"
    assert ident.file_sha256 == file_sha256(path)
    assert ident.state_dict_sha256 == state_dict_sha256(model.state_dict())


def test_missing_checkpoint_path_names_it(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        W.load_model("resnet18", str(tmp_path / "nope.pth"))


def test_offline_without_cache_names_both_fixes(offline_hub):
    with pytest.raises(WeightsError) as err:
        W.load_model("resnet18", "IMAGENET1K_V1")
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and "checkpoint path" in msg and "download failed" in msg
    assert "\n" not in msg
    with pytest.raises(WeightsError, match="downloads are disabled"):
        W.load_model("resnet18", "IMAGENET1K_V1", allow_download=False)


def test_preflight_downloads_missing_hub_weights_once(offline_hub, monkeypatch):
    """check_weights_available (Snakemake's main process, before any job) fetches a missing hub
    file when downloads are allowed, checks it, and never fetches it again; offline it fails."""
    with pytest.raises(WeightsError, match="download failed"):
        W.check_weights_available("resnet18", "IMAGENET1K_V1", allow_download=True)
    model, _ = W.load_model("resnet18", "random:3")
    fetched = []

    def fake_download(url, dst, progress=True):
        fetched.append(url)
        torch.save(model.state_dict(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    with pytest.raises(WeightsError, match="corrupt or not torchvision's"):  # a file that is not torchvision's
        W.check_weights_available("resnet18", "IMAGENET1K_V1", allow_download=True)
    cached = offline_hub / "checkpoints" / "resnet18-f37072fd.pth"
    assert fetched == ["https://download.pytorch.org/models/resnet18-f37072fd.pth"] and cached.exists()
    monkeypatch.setitem(TW.KNOWN_SHA256, "resnet18-f37072fd.pth", file_sha256(cached))
    W.check_weights_available("resnet18", "IMAGENET1K_V1", allow_download=True)
    _, ident = W.load_model("resnet18", "IMAGENET1K_V1")
    assert len(fetched) == 1 and ident.kind == "pretrained"


def test_hub_cache_is_used_and_checked(tmp_path, monkeypatch):
    """A file in the hub cache is loaded without any download, and its digest is checked."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    model, _ = W.load_model("resnet18", "random:5")
    cached = TW.hub_checkpoint_path("https://download.pytorch.org/models/resnet18-f37072fd.pth")
    cached.parent.mkdir(parents=True)
    torch.save(model.state_dict(), cached)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("must not download"))
    with pytest.raises(WeightsError, match="corrupt or not torchvision's"):
        W.load_model("resnet18", "IMAGENET1K_V1")
    monkeypatch.setitem(TW.KNOWN_SHA256, "resnet18-f37072fd.pth", file_sha256(cached))
    _, ident = W.load_model("resnet18", "IMAGENET1K_V1")
    assert ident.kind == "pretrained" and ident.state_dict_sha256 == state_dict_sha256(model.state_dict())


def test_unknown_weights_name_lists_choices():
    with pytest.raises(WeightsError, match="IMAGENET1K_V1"):
        W.load_model("resnet18", "IMAGENET1K_V2")


# --- checkpoints of one's own (model.checkpoint: any) -------------------------------------------------


def _wrapped(sd: dict, wrapping: str):
    """The ways training code commonly saves a ResNet's weights."""
    import argparse

    if wrapping == "plain":
        return sd
    if wrapping == "state_dict":  # the PyTorch ImageNet example: state_dict, optimizer, epoch, arch
        return {
            "state_dict": sd,
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]},
            "epoch": 90,
            "arch": "resnet18",
        }
    if wrapping == "model+args":  # torchvision's reference scripts: model, optimizer, args (a Namespace)
        return {
            "model": sd,
            "optimizer": {"state": {}},
            "lr_scheduler": {},
            "epoch": 3,
            "args": argparse.Namespace(lr=0.1),
        }
    if wrapping == "module.":  # saved from DataParallel / DistributedDataParallel
        return {"state_dict": {f"module.{k}": v for k, v in sd.items()}}
    if wrapping == "model.":  # a wrapper module holding the net as .model
        return {"model": {f"model.{k}": v for k, v in sd.items()}, "optimizer": {}}
    raise ValueError(wrapping)


@pytest.fixture(scope="module")
def finetuned():
    """A 'fine-tuned' resnet18 made here: random weights moved away from any seed's."""
    model, _ = W.load_model("resnet18", "random:11")
    sd = {k: (v + 0.01 if v.is_floating_point() else v).clone() for k, v in model.state_dict().items()}
    return sd


@pytest.mark.parametrize("wrapping", ["plain", "state_dict", "model+args", "module.", "model."])
def test_custom_checkpoint_in_each_wrapping_loads_the_same_weights(tmp_path, finetuned, wrapping):
    import hashlib

    path = tmp_path / "finetuned.pth"
    torch.save(_wrapped(finetuned, wrapping), path)
    W.check_weights_available("resnet18", str(path), allow_download=False, checkpoint="any")  # the pre-flight
    model, ident = W.load_model("resnet18", str(path), checkpoint="any")
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in finetuned.items())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert ident.kind == "custom" and ident.file_sha256 == digest
    # what the outputs record: the source that is known, never a claim that the file was pretrained
    assert ident.weights_source == ident.as_dict()["weights_source"] == "custom" and "pretrained" not in ident.as_dict()
    assert (
        ident.label
        == f"resnet18 custom checkpoint finetuned.pth (file sha256 {digest[:12]}, not torchvision's weights)"
    )
    assert ident.as_dict()["label"] == ident.label and ident.as_dict()["file_sha256"] == digest


def test_custom_checkpoint_is_refused_in_torchvision_mode(tmp_path, finetuned):
    path = tmp_path / "finetuned.pth"
    torch.save(finetuned, path)
    # the fix names the way to allow it in each place that takes weights
    with pytest.raises(
        WeightsError,
        match="matches none of torchvision's resnet18 checkpoints .*Fix: use the unmodified "
        "file torchvision publishes, or, for a checkpoint of your own, set "
        "model.checkpoint: any \\(resstream fv / activations: --checkpoint any; "
        'the Python API: checkpoint="any"\\)\\.$',
    ):
        W.load_model("resnet18", str(path))


def test_keys_that_do_not_fit_are_listed_in_one_line(tmp_path, finetuned):
    sd = {k: v for k, v in finetuned.items() if not k.startswith("layer4.1.")}
    sd["head.weight"] = torch.zeros(3)
    sd["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    path = tmp_path / "other.pth"
    torch.save({"state_dict": sd}, path)
    expected = (
        f"model.weights checkpoint {path} does not fit resnet18: missing keys layer4.1.conv1.weight, "
        f"layer4.1.bn1.weight, layer4.1.bn1.bias, layer4.1.bn1.running_mean and 6 more; unexpected keys "
        f"head.weight; wrong shapes layer1.0.conv1.weight [64, 64, 1, 1] (expected [64, 64, 3, 3]). Fix: give a "
        f"resnet18 checkpoint (understood: a 'state_dict' or 'model' entry, keys prefixed 'module.' or 'model.')."
    )
    for check in (
        lambda: W.load_model("resnet18", str(path), checkpoint="any"),
        lambda: W.check_weights_available("resnet18", str(path), False, checkpoint="any"),
    ):
        with pytest.raises(WeightsError) as err:
            check()
        assert str(err.value) == expected


def test_a_classifier_for_other_classes_is_fine(tmp_path, finetuned):
    """Fine-tuned for 10 classes: the study reads the blocks, never fc."""
    sd = dict(finetuned, **{"fc.weight": torch.ones(10, 512), "fc.bias": torch.zeros(10)})
    path = tmp_path / "ten_classes.pth"
    torch.save(sd, path)
    model, ident = W.load_model("resnet18", str(path), checkpoint="any")
    assert model.fc.weight.shape == (10, 512) and torch.equal(
        model.layer4[1].bn2.weight, finetuned["layer4.1.bn2.weight"]
    )


def test_a_pickled_model_or_a_wrong_spec_is_one_line(tmp_path):
    model, _ = W.load_model("resnet18", "random:0")
    path = tmp_path / "whole_model.pth"
    torch.save(model, path)  # the nn.Module itself: cannot be read without running code from the file
    with pytest.raises(WeightsError) as err:
        W.load_model("resnet18", str(path), checkpoint="any")
    # torch's own message advises weights_only=False (it would run the file's code) and holds ANSI escapes
    assert str(err.value) == (
        f"model.weights checkpoint {path} cannot be read as tensors (it holds the Python object "
        f"torchvision.models.resnet.ResNet, and loading that would run code from the file; it was not loaded). "
        f"Fix: save the weights with torch.save(model.state_dict(), path)."
    )
    with pytest.raises(
        WeightsError, match="model.checkpoint: any is for a checkpoint file, but model.weights is 'IMAGENET1K_V1'"
    ):
        check_weights_spec("resnet18", "IMAGENET1K_V1", "any")
    with pytest.raises(WeightsError, match="random weights need an integer seed"):
        check_weights_spec("resnet18", "random:zero")


class RunsCode:
    """Unpickling this runs a shell command: what a malicious checkpoint does."""

    def __reduce__(self):
        import os

        return os.system, ("touch pwned",)


def test_a_code_running_pickle_is_refused_without_torchs_unsafe_advice(tmp_path, monkeypatch):
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": RunsCode()}, path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsError) as err:
        W.check_weights_available("resnet18", str(path), False, checkpoint="any")
    assert str(err.value) == (
        f"model.weights checkpoint {path} cannot be read as tensors (it holds the Python object posix.system, and "
        f"loading that would run code from the file; it was not loaded). Fix: save the weights with "
        f"torch.save(model.state_dict(), path)."
    )
    assert not (tmp_path / "pwned").exists()


def nan_checkpoint(path):
    """resnet18's random:0 weights with one NaN in layer1.0.conv1.weight and an Inf further on."""
    model = saved_random_weights(path)
    state = model.state_dict()
    state["layer1.0.conv1.weight"][3, 2, 1, 0] = float("nan")
    state["layer3.0.bn1.running_var"][5] = float("inf")
    torch.save(state, path)
    return path


def nan_refusal(path) -> str:
    return (
        f"model.weights checkpoint {path} holds non-finite weights: layer1.0.conv1.weight has 1 NaN or Inf "
        f"value(s) of 36864 (the first such tensor). Fix: use a checkpoint saved before training diverged; "
        f"every FV and activation of this network would be NaN."
    )


def test_non_finite_weights_are_refused_naming_the_first_tensor(tmp_path):
    path = nan_checkpoint(tmp_path / "diverged.pth")
    with pytest.raises(WeightsError) as before_any_job:
        W.check_weights_available("resnet18", str(path), False, checkpoint="any")
    assert str(before_any_job.value) == nan_refusal(path)
    with pytest.raises(WeightsError) as loading:
        W.load_model("resnet18", str(path), checkpoint="any")
    assert str(loading.value) == nan_refusal(path)


def test_the_preflight_refuses_non_finite_weights_in_one_line(tmp_path, capsys):
    from resstream.workflow.config import validate_config
    from resstream.workflow.plan import StudyPlan
    from resstream.workflow.smk import check_inputs_or_exit

    path = nan_checkpoint(tmp_path / "diverged.pth")
    (tmp_path / "images").mkdir()
    study = StudyPlan(
        validate_config(
            {"model": {"weights": str(path), "checkpoint": "any"}, "dataset": {"path": str(tmp_path / "images")}}
        )
    )
    for dry_run in (True, False):
        with pytest.raises(SystemExit) as stop:
            check_inputs_or_exit(study, dry_run=dry_run)
        assert stop.value.code == 1
        assert capsys.readouterr().err == f"resstream: {nan_refusal(path)}\n"


def test_torchvision_file_in_any_mode_is_labelled_torchvision(tmp_path, monkeypatch):
    path, _ = published_checkpoint(tmp_path, monkeypatch)
    _, ident = W.load_model("resnet18", str(path), checkpoint="any")
    assert ident.kind == "checkpoint" and "custom" not in ident.label


def test_model_param_changes_with_the_custom_file(tmp_path, finetuned):
    """A retrained file at the same path reruns the jobs: the rules' model param holds its sha256,
    and a job loads the network from that param alone."""
    import hashlib

    path = tmp_path / "ft.pth"
    torch.save(finetuned, path)
    cfg = {"arch": "resnet18", "weights": str(path), "checkpoint": "any", "allow_download": True}
    first = W.model_param(cfg)
    assert first == {
        "arch": "resnet18",
        "weights": str(path),
        "checkpoint": "any",
        "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    torch.save({k: v * 2 for k, v in finetuned.items()}, path)
    assert W.model_param(cfg)["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() != first["file_sha256"]
    assert W.model_param({"arch": "resnet18", "weights": "random:0"}) == {
        "arch": "resnet18",
        "weights": "random:0",
        "checkpoint": "torchvision",
    }
    _, identity = W.load_model_param(W.model_param(cfg))
    assert identity.file_sha256 == W.model_param(cfg)["file_sha256"] and identity.kind == "custom"


def test_a_job_never_downloads_weights(offline_hub):
    """The hub file is missing where the job looks: one line that says jobs never download."""
    with pytest.raises(WeightsError, match="jobs never download them"):
        W.load_model_param({"arch": "resnet18", "weights": "IMAGENET1K_V1", "checkpoint": "torchvision"})


@pytest.mark.parametrize(
    "recorded, source",
    [
        ({"weights_source": "custom", "kind": "custom"}, "custom"),
        ({"kind": "pretrained"}, "torchvision"),
        ({"kind": "checkpoint"}, "torchvision"),
        ({"kind": "random"}, "random"),
        ({"pretrained": True}, "torchvision"),
        ({"pretrained": False}, "random"),  # outputs of earlier versions
        ({}, "random"),
        (None, "random"),  # nothing recorded: never shown as trained
    ],
)
def test_weights_source_of_recorded_identities(recorded, source):
    from resstream.model.weights_source import weights_source

    assert weights_source(recorded) == source


def test_combined_weights_source_names_the_weakest():
    from resstream.model.weights_source import combined_weights_source

    assert combined_weights_source(["torchvision", "torchvision"]) == "torchvision"
    assert combined_weights_source(["torchvision", "custom"]) == "custom"
    assert combined_weights_source(["custom", "random", "torchvision"]) == "random"
