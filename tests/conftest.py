import os
import sys
import urllib.error
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SAMPLE = (REPO / ".." / "shared" / "data" / "imagenet-sample").resolve()
sys.path.insert(0, str(REPO))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    if not SAMPLE.is_dir():
        pytest.fail(f"the ImageNet sample is missing at {SAMPLE}: tests need ../shared beside the checkout")
    return SAMPLE


@pytest.fixture(scope="session")
def random_model():
    from resstream.weights import load_model

    return load_model("resnet18", "random:0")


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty torch hub cache under tmp_path and no network: every download fails as offline."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    def no_network(*a, **k):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "hub"
