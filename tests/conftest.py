import os
import sys
import urllib.error
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


SAMPLE_CLASSES = 200


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """An ImageNet-like class-folder dataset made here (tests/sample_images.py): no test needs the
    fetched 1,000-image sample or anything beside the checkout."""
    from sample_images import make_image_folder

    return make_image_folder(tmp_path_factory.mktemp("sample"), n_classes=SAMPLE_CLASSES)


@pytest.fixture(scope="session")
def random_model():
    from resstream.model.weights import load_model

    return load_model("resnet18", "random:0")


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty torch hub cache under tmp_path and no network: every download fails as offline."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    def no_network(*a, **k):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "hub"


@pytest.fixture(scope="session")
def chromium():
    """One headless Chrome/Chromium for every atlas test; without one the test is skipped with one
    line saying how to get one (under CI=true it fails: tests/browser.py)."""
    from browser import start_chromium, stop_chromium

    browser = start_chromium()
    yield browser
    stop_chromium(browser)
