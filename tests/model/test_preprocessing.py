"""A model's own preprocessing: torchvision archs read images the paper's way, a timm arch its tag's
``pretrained_cfg`` way (mean, std, interpolation, crop_pct, crop_mode) in the dataset pass, the FV
normalisation and the measurement, and the files record what was applied; the exemplar grids show
images as the dataset pass read them."""

import json

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from resstream import api
from resstream.activations.exemplars import GRID_PADDING, write_exemplar_grids
from resstream.analysis import measure
from resstream.base.errors import UserError
from resstream.data.dataset import ImageFolderDataset, scan_image_folder, view_transform
from resstream.fv import render as fv
from resstream.model import preprocessing as prep
from resstream.model.blocks import parse_layer
from resstream.workflow.plan import schema_fv_settings

# tags whose pretrained_cfg differs from torchvision's: mean/std 0.5 + bicubic + crop_pct 0.9;
# bicubic + crop_pct 0.95; mean 0 / std 1 (bilinear, 0.875); and one equal to torchvision's
TAGS = [
    "resnetv2_18.ra4_e3600_r224_in1k",
    "resnet50.a1_in1k",
    "mobilenetv3_large_100.miil_in21k_ft_in1k",
    "resnet18.tv_in1k",
]


@pytest.fixture(scope="module")
def one_image(tmp_path_factory):
    """A folder with one non-square RGB picture (so the resize and the crop both matter)."""
    root = tmp_path_factory.mktemp("one_image")
    pixels = np.random.default_rng(0).integers(0, 256, (300, 410, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "picture.png")
    return root


def test_a_torchvision_arch_reads_images_the_papers_way():
    assert prep.for_arch("resnet18") == prep.TORCHVISION
    assert prep.TORCHVISION.resize_size == 256 and prep.TORCHVISION.crop_size == 224
    assert prep.TORCHVISION.describe() == (
        "Resize(256, bilinear) antialiased, CenterCrop(224), ToTensor, "
        "Normalize(mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225])"
    )


@pytest.mark.parametrize("tag", TAGS)
def test_the_dataset_pass_reads_an_image_as_timms_own_eval_transform(tag, one_image):
    import timm
    from timm.data import create_transform, resolve_data_config

    model = timm.create_model(tag, pretrained=False)
    timms = create_transform(**resolve_data_config({}, model=model))(
        Image.open(one_image / "picture.png").convert("RGB")
    )
    dataset = ImageFolderDataset(
        one_image, records=scan_image_folder(one_image), preprocessing=prep.for_arch(f"timm:{tag}")
    )
    ours, _, ok = dataset[0]
    assert ok and ours.shape == timms.shape == (3, 224, 224)
    assert torch.equal(ours, timms)


def test_a_squash_crop_matches_timms_squash(one_image):
    from timm.data.transforms_factory import transforms_imagenet_eval

    squash = prep.Preprocessing(
        mean=(0.5, 0.4, 0.3),
        std=(0.2, 0.3, 0.4),
        interpolation="bicubic",
        crop_pct=0.9,
        crop_mode="squash",
        trained_input_size=224,
    )
    timms = transforms_imagenet_eval(
        224, crop_pct=0.9, crop_mode="squash", interpolation="bicubic", mean=squash.mean, std=squash.std
    )
    image = Image.open(one_image / "picture.png").convert("RGB")
    ours = ImageFolderDataset(one_image, records=scan_image_folder(one_image), preprocessing=squash)[0][0]
    assert torch.equal(ours, timms(image))


def test_the_pretrained_cfg_is_resolved_and_said_in_one_line():
    bit = prep.for_arch("timm:resnetv2_50x1_bit")  # its default tag: goog_distilled_in1k
    assert (bit.mean, bit.std, bit.interpolation, bit.crop_pct, bit.resize_size) == (
        (0.5,) * 3,
        (0.5,) * 3,
        "bicubic",
        0.875,
        256,
    )
    assert prep.applied_line("timm:resnet50.a1_in1k") == (
        "timm:resnet50.a1_in1k reads images with its pretrained_cfg's preprocessing: Resize(235, bicubic) antialiased, "
        "CenterCrop(224), ToTensor, Normalize(mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225]); timm evaluates "
        "it at 288 px (its test_input_size), the study at 224 px"
    )
    trained_elsewhere = (
        "; it was trained at {} px, the study crops 224 px (the centre neuron, FV image and scale "
        "transforms are defined there)"
    )
    assert prep.applied_line("timm:resnet18.a3_in1k").endswith(trained_elsewhere.format(160))  # test size 224
    assert prep.applied_line("timm:efficientnet_b3.ra2_in1k").endswith(  # not recorded: read from timm
        trained_elsewhere.format(288) + "; timm evaluates it at 320 px (its test_input_size), the study at 224 px"
    )
    recorded = prep.for_arch("timm:resnet50.a1_in1k").as_dict()
    assert (recorded["trained_input_size"], recorded["test_input_size"], recorded["crop_size"]) == (224, 288, 224)
    assert prep.TORCHVISION.as_dict()["test_input_size"] is None


def test_a_border_crop_is_refused_naming_the_tag(monkeypatch):
    from resstream.model import timm_models

    monkeypatch.setattr(timm_models, "preprocessing", lambda arch: {"crop_mode": "border", "crop_pct": 1.0})
    with pytest.raises(UserError) as err:
        prep.for_arch("timm:resnet18.a1_in1k")
    assert str(err.value) == (
        "model.arch 'timm:resnet18.a1_in1k': its pretrained_cfg's crop_mode 'border' (pad to keep "
        "the whole image) is not supported; fix: choose a tag with crop_mode center or squash"
    )


def _first_input(model, blocks, preprocessing):
    """The normalised input the network gets at the first FV step of channel 0 of block 1.0's output."""
    seen = []
    hook = model.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    try:
        result = fv.render_units(
            model,
            blocks,
            "layer1.0.prerelu_out",
            parse_layer(blocks, "layer1.0.prerelu_out"),
            [0],
            **schema_fv_settings(steps=1, jitter=4, rf_crop=False),
            preprocessing=preprocessing,
        )
    finally:
        hook.remove()
    return seen[0], result


def test_the_fv_is_normalised_with_the_models_mean_and_std(net):
    """Same seed, same image and transforms: only the normalisation differs, by exactly the mean/std."""
    model, blocks = net
    half = prep.for_arch("timm:resnetv2_18.ra4_e3600_r224_in1k")
    x_tv, _ = _first_input(model, blocks, prep.TORCHVISION)
    x_half, result = _first_input(model, blocks, half)
    mean, std = torch.tensor(prep.TORCHVISION.mean)[:, None, None], torch.tensor(prep.TORCHVISION.std)[:, None, None]
    pixels = x_tv * std + mean  # the transformed image in [0, 1]
    torch.testing.assert_close(x_half, (pixels - 0.5) / 0.5, rtol=0, atol=1e-5)
    assert result.preprocessing["mean"] == [0.5, 0.5, 0.5] and result.preprocessing["interpolation"] == "bicubic"


def test_the_measurement_reads_an_fv_png_with_the_models_mean_and_std(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "unit0000.png")
    half = prep.for_arch("timm:resnetv2_18.ra4_e3600_r224_in1k")
    x = measure.load_fv_png(str(tmp_path / "unit0000.png"), half)
    expected = (torch.from_numpy(pixels).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-6)


def test_activations_and_fv_files_record_the_preprocessing_applied(tmp_path, one_image):
    arch = "timm:resnet18.a1_in1k"
    expected = prep.for_arch(arch)
    out = api.extract_activations(
        str(one_image),
        str(tmp_path / "a.h5"),
        arch=arch,
        weights="random:0",
        blocks=["1.1"],
        batch_size=1,
        workers=0,
        topk=1,
    )
    with h5py.File(out) as f:
        assert json.loads(f.attrs["preprocessing"]) == expected.as_dict()
        assert f.attrs["transform"] == expected.describe()
    write_exemplar_grids(out, "layer1.1.bn2", [0], str(tmp_path / "grids"))  # the one image, as it was read
    with Image.open(tmp_path / "grids" / "unit0000.png") as grid:
        tile = np.asarray(grid.convert("RGB"))[GRID_PADDING : GRID_PADDING + 224, GRID_PADDING : GRID_PADDING + 224]
    view = view_transform(expected)(Image.open(one_image / "picture.png").convert("RGB"))
    np.testing.assert_array_equal(tile, (view * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
    api.render_fv("layer1.1.bn2", [0], str(tmp_path / "fv"), arch=arch, weights="random:0", steps=1)
    with h5py.File(tmp_path / "fv" / "fv.h5") as f:
        assert json.loads(f.attrs["preprocessing"]) == expected.as_dict()
    assert expected.interpolation == "bicubic" and expected.resize_size == 235


def test_a_run_says_what_a_timm_arch_applies_and_nothing_for_torchvision(capsys):
    from resstream.workflow import smk

    smk._note_timm_preprocessing("resnet18")
    assert capsys.readouterr().err == ""
    smk._note_timm_preprocessing("timm:resnetv2_50x1_bit")
    assert capsys.readouterr().err == (
        "resstream: note: timm:resnetv2_50x1_bit.goog_distilled_in1k reads images with its pretrained_cfg's preprocessing: Resize(256, "
        "bicubic) antialiased, CenterCrop(224), ToTensor, Normalize(mean [0.5, 0.5, 0.5], std [0.5, 0.5, 0.5])\n"
    )
