import dataclasses
import os

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.sample_images import SAMPLE_CLASSES
from resstream.data.dataset import DatasetError, ImageFolderDataset, IMAGENET_MEAN, IMAGENET_STD, load_rgb, scan_image_folder


def test_sample_is_read_in_imagenet_class_layout(sample_dir):
    recs = scan_image_folder(sample_dir)
    n = SAMPLE_CLASSES
    assert len(recs) == n
    assert len({r.class_id for r in recs}) == n
    assert recs[0].class_id == 0 and recs[-1].class_id == n - 1
    assert [r.index for r in recs] == list(range(n))
    assert recs[0].path.startswith(recs[0].class_name + "/")


def test_transform_is_resize256_centercrop224_normalise(sample_dir):
    ds = ImageFolderDataset(sample_dir)
    x, idx, ok = ds[3]
    assert ok and idx == 3 and x.shape == (3, 224, 224)
    # independent: PIL resize of the short side to 256 (bilinear, antialiased), centre crop 224
    img = Image.open(sample_dir / ds.records[3].path).convert("RGB")
    w, h = img.size
    s = 256 / min(w, h)
    nw, nh = (256, int(h * s)) if w <= h else (int(w * s), 256)
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = int(round((nw - 224) / 2.0)), int(round((nh - 224) / 2.0))
    arr = np.asarray(img.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255
    ref = (torch.from_numpy(arr).permute(2, 0, 1) - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    torch.testing.assert_close(x, ref, atol=2e-2, rtol=0)  # PIL vs torchvision rounding of the resize


@pytest.fixture
def odd_folder(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (300, 280, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a_rgb.jpg")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "b_gray.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c_cmyk.jpg")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(tmp_path / "d_alpha.png")
    (tmp_path / "e_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_flat_folder_modes_become_rgb_and_corrupt_is_named(odd_folder):
    recs = scan_image_folder(odd_folder)
    assert [r.path for r in recs] == ["a_rgb.jpg", "b_gray.png", "c_cmyk.jpg", "d_alpha.png", "e_corrupt.jpg"]
    assert all(r.class_id == -1 for r in recs)
    ds = ImageFolderDataset(odd_folder, on_bad_image="skip")
    for i in range(4):
        x, _, ok = ds[i]
        assert ok and x.shape == (3, 224, 224)
    gray, _, _ = ds[1]
    assert torch.allclose(gray[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0], gray[1] * IMAGENET_STD[1] + IMAGENET_MEAN[1], atol=1e-6)
    x, idx, ok = ds[4]
    assert not ok and idx == 4 and torch.count_nonzero(x) == 0
    strict = ImageFolderDataset(odd_folder, on_bad_image="fail")
    with pytest.raises(DatasetError, match="e_corrupt.jpg"):
        strict[4]


def test_empty_and_missing_folders_are_clear_errors(tmp_path):
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DatasetError, match="holds no image files"):
        scan_image_folder(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        scan_image_folder(tmp_path / "missing")


def test_load_rgb_names_truncated_file(tmp_path, sample_dir):
    src = next(sample_dir.glob("*/*.JPEG"))
    bad = tmp_path / "truncated.JPEG"
    bad.write_bytes(src.read_bytes()[:200])
    with pytest.raises(DatasetError, match="truncated.JPEG"):
        load_rgb(bad)


def test_symlinked_class_folders_and_subfolders_are_followed(tmp_path, sample_dir):
    """Class folders that are links into a shared copy (common on servers), and a link to a folder
    inside a class folder: listed like real folders, in the same order."""
    classes = sorted(p.name for p in sample_dir.iterdir())[:3]
    real, linked = tmp_path / "real", tmp_path / "linked"
    for c in classes:
        (real / c).mkdir(parents=True)
        src = next((sample_dir / c).iterdir())
        (real / c / src.name).write_bytes(src.read_bytes())
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "more.JPEG").write_bytes(next((sample_dir / classes[0]).iterdir()).read_bytes())
    (real / classes[0] / "sub").symlink_to(tmp_path / "extra")  # a linked folder inside a class folder
    linked.mkdir()
    for c in classes:
        (linked / c).symlink_to(real / c)
    listed = [(r.path, r.class_id, r.class_name) for r in scan_image_folder(linked)]
    assert listed == [(r.path, r.class_id, r.class_name) for r in scan_image_folder(real)]
    assert listed[1] == (f"{classes[0]}/sub/more.JPEG", 0, classes[0])
    assert len(listed) == 4


def test_a_link_cycle_is_refused_in_one_line(tmp_path, sample_dir):
    cls = tmp_path / "data" / "n01440764"
    cls.mkdir(parents=True)
    src = next(next(sample_dir.iterdir()).iterdir())
    (cls / "a.JPEG").write_bytes(src.read_bytes())
    (cls / "loop").symlink_to(tmp_path / "data")  # points back to the dataset root
    with pytest.raises(DatasetError) as err:
        scan_image_folder(tmp_path / "data")
    assert str(err.value) == (f"dataset.path {tmp_path / 'data'} has a link cycle: {cls / 'loop'} leads back to "
                              f"{os.path.realpath(tmp_path / 'data')}, a folder above it. Fix: remove or repoint that link.")


@pytest.mark.parametrize("size", [(500, 375), (375, 500), (256, 256), (224, 300), (100, 80), (1001, 257), (333, 333)])
def test_the_exemplar_view_without_torch_is_torchvisions_pixel_for_pixel(size):
    """The exemplar grids draw the 224-px view with PIL alone; it must be torchvision's Resize(256) +
    CenterCrop(224) of the same image, to the last pixel, whatever the image's shape."""
    from resstream.data.dataset import view_transform
    from resstream.data.image_folder import view_pixels

    rng = np.random.default_rng(sum(size))
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    want = (view_transform()(img) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    got = view_pixels(img)
    assert got.shape == (224, 224, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("size", [(500, 375), (375, 500), (224, 300), (100, 80)])
@pytest.mark.parametrize("interpolation,crop_pct,squash", [("bicubic", 0.95, False), ("bicubic", 0.9, True),
                                                          ("bilinear", 1.0, False)])
def test_a_timm_tags_exemplar_view_without_torch_is_its_transforms(size, interpolation, crop_pct, squash):
    """A timm tag's view (its interpolation, crop_pct, crop_mode) drawn with PIL alone equals its
    dataset-pass transform to the last pixel."""
    from resstream.data.dataset import view_transform
    from resstream.data.image_folder import view_pixels
    from resstream.model.preprocessing import TORCHVISION

    prep = dataclasses.replace(TORCHVISION, interpolation=interpolation, crop_pct=crop_pct,
                               crop_mode="squash" if squash else "center")
    img = Image.fromarray(np.random.default_rng(sum(size)).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    want = (view_transform(prep)(img) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(view_pixels(img, prep.resize_size, 224, interpolation, squash), want)
