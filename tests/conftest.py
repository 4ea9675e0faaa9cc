"""The fixtures every stage's tests share (their helpers live in tests/helpers/)."""

import os
import sys
import urllib.error
from pathlib import Path

import pytest
import torch

from helpers import REPO

sys.path.insert(0, str(REPO))

# Under pytest-xdist (make test: pytest -n) each worker is one process of several on the machine's
# cores: one thread each, so that in-process torch does not oversubscribe them.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """An ImageNet-like class-folder dataset made here (tests/helpers/sample_images.py): no test needs the
    fetched 1,000-image sample or anything beside the checkout.  One for the session, whatever the
    xdist workers (tests/helpers/once.py)."""
    from helpers.once import made_once
    from helpers.sample_images import SAMPLE_CLASSES, make_image_folder

    return made_once(tmp_path_factory, "sample", lambda folder: make_image_folder(folder, n_classes=SAMPLE_CLASSES))


@pytest.fixture(scope="session")
def random_model():
    from resstream.model.weights import load_model

    return load_model("resnet18", "random:0")


@pytest.fixture(scope="module")
def net():
    """A fresh random resnet18 (seed 0) per test module, with its blocks: for tests that move it or
    hook into it."""
    from resstream.model.walk import model_blocks
    from resstream.model.weights import load_model

    model, _ = load_model("resnet18", "random:0")
    return model, model_blocks(model)


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
    line saying how to get one (under CI=true it fails: tests/helpers/browser.py)."""
    from helpers.browser import start_chromium, stop_chromium

    browser = start_chromium()
    yield browser
    stop_chromium(browser)


@pytest.fixture(scope="session")
def shared_run(sample_dir, tmp_path_factory):
    """THE finished small run of the session (tests/helpers/runs.py: blocks 1.1 and 2.1, channels
    0-2, 24 images, every stage), made once.  Use it as is only to read it; copy it first
    (``shared_run.copy(tmp_path / "run")``) to change anything: its outputs are checked unchanged at
    the end of the session (by each xdist worker; the run is made once for all of them)."""
    from helpers.once import made_once
    from helpers.runs import FinishedRun, finish_small_run, output_stamps

    run = FinishedRun(made_once(tmp_path_factory, "small_run", lambda folder: finish_small_run(folder, sample_dir)))
    before = output_stamps(run.results)
    yield run
    assert output_stamps(run.results) == before, "a test changed the shared small run: copy it first"
