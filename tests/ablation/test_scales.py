"""Each scale's view equals the author's torchvision pipeline, written here as scale_robust.py
writes it (PIL transforms), pixel for pixel on a test image."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from resstream.ablation.scales import Scale, ScaleError, scale_transform, scaled_down_size, study_scales

NORM = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def picture():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (300, 410, 3), dtype=np.uint8))


def author_pipeline(s, fill=None):
    if s == 1:
        steps = [transforms.Resize(256), transforms.CenterCrop(224)]
    elif s > 1:
        steps = [transforms.Resize(256), transforms.CenterCrop(int(224 * (2 - s))), transforms.Resize(224)]
    else:
        size = math.ceil(224 * s)
        size += size % 2
        steps = [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.Resize(size),
            transforms.Pad(int((224 - size) / 2), fill=fill),
        ]
    return transforms.Compose(steps + [transforms.ToTensor(), NORM])


@pytest.mark.parametrize(
    "scale",
    [
        Scale(1.0),
        Scale(1.1),
        Scale(1.2),
        Scale(1.3),
        Scale(1.4),
        Scale(1.5),
        Scale(0.9, 0),
        Scale(0.7, 127),
        Scale(0.5, 0),
        Scale(0.75, 127),
    ],
)
def test_scale_equals_the_authors_pipeline(picture, scale):
    got = scale_transform(scale)(picture)
    expected = author_pipeline(scale.factor, scale.fill)(picture)
    assert got.shape == (3, 224, 224)
    assert torch.equal(got, expected)


def test_scale_down_pads_with_the_fill(picture):
    x = scale_transform(Scale(0.5, 127))(picture)
    grey = NORM(torch.full((3, 1, 1), 127 / 255))[:, 0, 0]
    assert torch.equal(x[:, 0, 0], grey) and torch.equal(x[:, 223, 223], grey)
    assert not torch.equal(x[:, 112, 112], grey)


def test_scaled_down_sizes_are_even_and_round_up():
    assert [scaled_down_size(s) for s in (0.9, 0.5, 0.7, 0.75)] == [202, 112, 158, 168]


def test_study_scales_repeat_each_scale_down_per_fill():
    assert study_scales([1, 1.1, 0.9], [0, 127]) == [Scale(1.0), Scale(1.1), Scale(0.9, 0), Scale(0.9, 127)]


def test_bad_scales_name_the_problem():
    with pytest.raises(ScaleError, match=r"ablation scale 2.5 is outside \(0, 2\)"):
        scale_transform(Scale(2.5))
    with pytest.raises(ScaleError, match="ablation scale-down 0.9 needs a pad fill"):
        scale_transform(Scale(0.9))
