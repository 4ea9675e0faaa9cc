import os
import sys
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
