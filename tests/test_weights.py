import pytest
import torch

from resstream import weights as W


def test_random_weights_are_reproducible_and_marked():
    m1, id1 = W.load_model("resnet18", "random:7")
    m2, id2 = W.load_model("resnet18", "random:7")
    _, id3 = W.load_model("resnet18", "random:8")
    assert id1.state_dict_sha256 == id2.state_dict_sha256 != id3.state_dict_sha256
    assert not id1.pretrained and "RANDOM" in id1.label
    # the documented recipe rebuilds the same weights: torch.manual_seed(SEED); resnet18(weights=None)
    import torchvision
    torch.manual_seed(7)
    ref = torchvision.models.resnet18(weights=None)
    assert W.state_dict_sha256(ref.state_dict()) == id1.state_dict_sha256
    assert not m1.training and not any(p.requires_grad for p in m1.parameters())


def test_checkpoint_with_wrong_sha256_is_refused(tmp_path):
    model, _ = W.load_model("resnet18", "random:0")
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(W.WeightsError) as err:
        W.load_model("resnet18", str(path))
    msg = str(err.value)
    assert str(path) in msg and W.KNOWN_SHA256["resnet18-f37072fd.pth"] in msg


def test_renamed_unknown_checkpoint_is_refused(tmp_path):
    model, _ = W.load_model("resnet18", "random:0")
    path = tmp_path / "my_weights.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(W.WeightsError, match="matches none of torchvision's resnet18 checkpoints"):
        W.load_model("resnet18", str(path))


def test_checkpoint_with_published_digest_loads(tmp_path, monkeypatch):
    """The accept path: a file whose sha256 equals the published one loads and is recorded."""
    model, _ = W.load_model("resnet18", "random:3")
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(model.state_dict(), path)
    monkeypatch.setitem(W.KNOWN_SHA256, "resnet18-f37072fd.pth", W.file_sha256(path))
    loaded, ident = W.load_model("resnet18", str(path))
    assert ident.kind == "checkpoint" and ident.pretrained
    assert ident.file_sha256 == W.file_sha256(path)
    assert ident.state_dict_sha256 == W.state_dict_sha256(model.state_dict())


def test_missing_checkpoint_path_names_it(tmp_path):
    with pytest.raises(W.WeightsError, match="does not exist"):
        W.load_model("resnet18", str(tmp_path / "nope.pth"))


def test_offline_without_cache_names_both_fixes(offline_hub):
    with pytest.raises(W.WeightsError) as err:
        W.load_model("resnet18", "IMAGENET1K_V1")
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and "checkpoint path" in msg and "download failed" in msg
    assert "\n" not in msg
    with pytest.raises(W.WeightsError, match="downloads are disabled"):
        W.load_model("resnet18", "IMAGENET1K_V1", allow_download=False)


def test_preflight_downloads_missing_hub_weights_once(offline_hub, monkeypatch):
    """check_weights_available (Snakemake's main process, before any job) fetches a missing hub
    file when downloads are allowed, checks it, and never fetches it again; offline it fails."""
    with pytest.raises(W.WeightsError, match="download failed"):
        W.check_weights_available("resnet18", "IMAGENET1K_V1", allow_download=True)
    model, _ = W.load_model("resnet18", "random:3")
    fetched = []

    def fake_download(url, dst, progress=True):
        fetched.append(url)
        torch.save(model.state_dict(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    with pytest.raises(W.WeightsError, match="corrupt or not torchvision's"):  # a file that is not torchvision's
        W.check_weights_available("resnet18", "IMAGENET1K_V1", allow_download=True)
    cached = offline_hub / "checkpoints" / "resnet18-f37072fd.pth"
    assert fetched == ["https://download.pytorch.org/models/resnet18-f37072fd.pth"] and cached.exists()
    monkeypatch.setitem(W.KNOWN_SHA256, "resnet18-f37072fd.pth", W.file_sha256(cached))
    W.check_weights_available("resnet18", "IMAGENET1K_V1", allow_download=True)
    _, ident = W.load_model("resnet18", "IMAGENET1K_V1")
    assert len(fetched) == 1 and ident.kind == "pretrained"


def test_hub_cache_is_used_and_checked(tmp_path, monkeypatch):
    """A file in the hub cache is loaded without any download, and its digest is checked."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    model, _ = W.load_model("resnet18", "random:5")
    cached = W.hub_checkpoint_path("https://download.pytorch.org/models/resnet18-f37072fd.pth")
    cached.parent.mkdir(parents=True)
    torch.save(model.state_dict(), cached)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("must not download"))
    with pytest.raises(W.WeightsError, match="corrupt or not torchvision's"):
        W.load_model("resnet18", "IMAGENET1K_V1")
    monkeypatch.setitem(W.KNOWN_SHA256, "resnet18-f37072fd.pth", W.file_sha256(cached))
    _, ident = W.load_model("resnet18", "IMAGENET1K_V1")
    assert ident.kind == "pretrained" and ident.state_dict_sha256 == W.state_dict_sha256(model.state_dict())


def test_unknown_weights_name_lists_choices():
    with pytest.raises(W.WeightsError, match="IMAGENET1K_V1"):
        W.load_model("resnet18", "IMAGENET1K_V2")
