"""Bad input: each case ends with an error that names the problem and the fix, and leaves every
finished output it does not concern as it was (bytes and mtimes checked before and after).

Config-, weights- and dataset-folder problems are caught in snakemake's main process before any
job starts, so snakemake never gets to remove the (then outdated) outputs of the jobs it planned.
"""

import os
import shutil

import h5py
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from resstream.validate import FVFileError, check_fv_png
from workflow_helpers import FV_LAYERS_11, link_images, smk, tiny_config


def targets(results):
    return [f"{results}/model_card.json", f"{results}/activations/activations.h5"] + [
        f"{results}/fv/{layer}/c0000-0063" for layer in FV_LAYERS_11]


def snapshot(results, skip=()):
    """{file: (mtime_ns, bytes)} of every finished output (logs and snakemake's own files aside)."""
    out = {}
    for p in sorted(results.rglob("*")):
        rel = str(p.relative_to(results))
        if p.is_file() and not rel.startswith("logs") and ".snakemake" not in p.name and not rel.startswith(skip):
            out[rel] = (p.stat().st_mtime_ns, p.read_bytes())
    return out


@pytest.fixture(scope="module")
def finished(sample_dir, tmp_path_factory):
    """A finished tiny run: model card, block 1.1's FV chunks (channel 0), dataset activations."""
    tmp = tmp_path_factory.mktemp("finished")
    data = link_images(sample_dir, tmp / "data", 6)
    config = tiny_config(tmp, data)
    smk(*targets(tmp / "results"), "--cores", "2", "--configfile", "demo.yaml", config)
    return tmp, yaml.safe_load(config.read_text())


def run_with(finished, tmp_path, change, env=None):
    """Rerun the finished study's targets with a changed config; expect a failure."""
    tmp, base = finished
    cfg = yaml.safe_load(yaml.safe_dump(base))
    change(cfg)
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(cfg))
    before = snapshot(tmp / "results")
    proc = smk(*targets(tmp / "results"), "--cores", "2", "--configfile", "demo.yaml", config, env=env, check=False)
    assert proc.returncode != 0
    assert snapshot(tmp / "results") == before  # nothing finished was removed or rewritten
    return proc


def one_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("resstream:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def test_missing_pretrained_weights_offline(finished, tmp_path):
    def change(cfg):
        cfg["model"].update(weights="IMAGENET1K_V1", allow_download=False)

    env = dict(os.environ, TORCH_HOME=str(tmp_path / "empty-torch-home"))
    line = one_line(run_with(finished, tmp_path, change, env=env))
    cached = tmp_path / "empty-torch-home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert line == (
        f"resstream: weights resnet18 IMAGENET1K_V1 are not in torch's hub cache ({cached}) and downloads are "
        f"disabled. Fix: copy resnet18-f37072fd.pth there (or point TORCH_HOME at a cache holding it), or set "
        f"model.weights to a local checkpoint path; for a test run use model.weights: random:0.")


def test_offline_with_downloads_allowed_stops_before_any_job(finished, tmp_path):
    """The main process fetches missing hub weights before any job runs; offline (a dead proxy
    here, so the test does not depend on this machine's network) it stops with one line."""
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "empty-torch-home"), https_proxy="http://127.0.0.1:9",
               HTTPS_PROXY="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    proc = run_with(finished, tmp_path, lambda cfg: cfg["model"].update(weights="IMAGENET1K_V1", allow_download=True), env=env)
    line = one_line(proc)
    assert line.startswith("resstream: weights resnet18 IMAGENET1K_V1 are not in torch's hub cache (") and "download failed" in line
    assert "rule " not in proc.stdout + proc.stderr  # no job was started


def test_checkpoint_with_a_wrong_sha256(finished, tmp_path):
    fake = tmp_path / "resnet18-f37072fd.pth"
    torch.save({"fc.weight": torch.zeros(2)}, fake)

    line = one_line(run_with(finished, tmp_path, lambda cfg: cfg["model"].update(weights=str(fake))))
    assert line.startswith(f"resstream: checkpoint {fake} has sha256 ")
    assert line.endswith("expected f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec for "
                         "resnet18-f37072fd.pth: the file is corrupt or not torchvision's. Fix: download it again "
                         "or point model.weights at the right file.")


def test_unknown_block(finished, tmp_path):
    line = one_line(run_with(finished, tmp_path, lambda cfg: cfg["study"].update(blocks=["1.1", "2.7"])))
    assert line == ("resstream: study.blocks: unknown block '2.7'; resnet18 has blocks "
                    "1.0, 1.1, 2.0, 2.1, 3.0, 3.1, 4.0, 4.1")


def test_channel_out_of_range(finished, tmp_path):
    line = one_line(run_with(finished, tmp_path, lambda cfg: cfg["study"].update(channels=[0, 64])))
    assert line == ("resstream: study.channels: channel(s) [64] out of range for block 1.1, which has "
                    "channels 0..63")


def test_empty_dataset_folder(finished, tmp_path):
    empty = tmp_path / "empty"
    (empty / "n01440764").mkdir(parents=True)
    line = one_line(run_with(finished, tmp_path, lambda cfg: cfg["dataset"].update(path=str(empty))))
    assert line == (f"resstream: dataset.path {empty} holds no image files (.jpg, .jpeg, .png, ...), neither in "
                    f"class sub-folders nor flat. Fix: point dataset.path at a folder with images.")


@pytest.fixture
def corrupt_dataset(sample_dir, tmp_path):
    data = link_images(sample_dir, tmp_path / "data", 3)
    bad = next(data.iterdir()) / "zz_broken.JPEG"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    return data, bad


def test_corrupt_jpeg_skipped_and_recorded(corrupt_dataset, tmp_path):
    data, bad = corrupt_dataset
    config = tiny_config(tmp_path, data)
    h5 = tmp_path / "results" / "activations" / "activations.h5"
    smk(h5, "--cores", "2", "--configfile", "demo.yaml", config)
    with h5py.File(h5) as f:
        paths = list(f["images/path"].asstr()[:])
        ok = f["images/ok"][:]
        row = paths.index(str(bad.relative_to(data)))
        assert not ok[row] and ok.sum() == len(paths) - 1
        assert np.isnan(f["layers/layer1.1.bn2"][row]).all()
    log = (tmp_path / "results" / "logs" / "activations.log").read_text()
    assert f"skipping unreadable image {bad}" in log


def test_corrupt_jpeg_fails_naming_the_file(corrupt_dataset, tmp_path):
    data, bad = corrupt_dataset
    config = tiny_config(tmp_path, data, dataset={"on_bad_image": "fail"})
    h5 = tmp_path / "results" / "activations" / "activations.h5"
    proc = smk(h5, "--cores", "2", "--configfile", "demo.yaml", config, check=False)
    assert proc.returncode != 0
    line = one_line(proc)
    assert line.startswith(f"resstream: cannot read image {bad}: ")
    assert line.endswith("Fix: replace or remove the file, or set dataset.on_bad_image: skip")
    assert str(tmp_path / "results" / "logs" / "activations.log") in proc.stderr  # the log it names
    assert not h5.exists()  # the partial file never gets the final name


def test_fv_png_of_the_wrong_size_is_refused_naming_the_file(finished, tmp_path):
    """The measurement stage reloads FV PNGs through this check, so it names the file."""
    tmp, _ = finished
    chunk = tmp_path / "c0000-0063"
    shutil.copytree(tmp / "results" / "fv" / "layer1.1.bn2" / "c0000-0063", chunk)
    check_fv_png(str(chunk / "unit0000.png"))  # what the FV stage wrote passes
    Image.new("RGB", (112, 112)).save(chunk / "unit0000.png")
    with pytest.raises(FVFileError) as err:
        check_fv_png(str(chunk / "unit0000.png"))
    assert str(err.value) == (
        f"FV image {chunk}/unit0000.png is a 112x112 RGB PNG, not the 224x224 RGB PNG the FV stage writes: it was "
        f"replaced or damaged. Fix: delete the chunk folder {chunk} and rerun snakemake (it redoes that chunk), "
        f"or restore the file from the chunk's fv.h5 (dataset 'image').")
    from resstream.measure import load_fv_png

    with pytest.raises(FVFileError, match=f"FV image {chunk}/unit0000.png is a 112x112"):
        load_fv_png(str(chunk / "unit0000.png"))  # what measure_fv_block calls for every unit
    (chunk / "unit0000.png").write_bytes(b"garbage")
    with pytest.raises(FVFileError, match="cannot be read"):
        check_fv_png(str(chunk / "unit0000.png"))


def rerun_layer_with_lr(finished, tmp_path, lr):
    """Rerun only layer1.1.bn2's chunk (an fv.overrides change) with a huge learning rate."""
    tmp, base = finished
    cfg = yaml.safe_load(yaml.safe_dump(base))
    cfg["fv"]["overrides"] = {"layer1.1.bn2": {"lr": lr}}
    config = tmp_path / "lr.yaml"
    config.write_text(yaml.safe_dump(cfg))
    results = tmp / "results"
    before = snapshot(results, skip="fv/layer1.1.bn2")
    proc = smk(*targets(results), "--cores", "2", "--configfile", "demo.yaml", config, check=False)
    assert snapshot(results, skip="fv/layer1.1.bn2") == before  # only the changed layer's chunk was redone
    return proc, results / "fv" / "layer1.1.bn2" / "c0000-0063", results / "logs" / "fv" / "layer1.1.bn2" / "c0000-0063.log"


def test_nan_during_optimisation_is_recorded_with_a_warning(finished, tmp_path):
    proc, chunk, log = rerun_layer_with_lr(finished, tmp_path, 1e36)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with h5py.File(chunk / "fv.h5") as f:
        assert [s.decode() for s in f["status"][:]] == ["nan"]
    assert ("unit layer1.1.bn2 channel 0 produced NaN during optimisation (lr 1e+36): recorded as 'nan'; "
            "fix: lower fv.lr (or fv.overrides) and rerun this chunk") in log.read_text()


def test_adam_overflow_fails_the_chunk_saying_lower_the_lr(finished, tmp_path):
    proc, chunk, log = rerun_layer_with_lr(finished, tmp_path, 1e38)
    assert proc.returncode != 0
    line = one_line(proc)
    assert line.startswith("resstream: FV of layer1.1.bn2 failed at step 1 with lr 1e+38: ")
    assert line.endswith("Fix: lower fv.lr")
    assert str(log) in proc.stderr and "Fix: lower fv.lr" in log.read_text()
    assert not chunk.exists() and not list(chunk.parent.glob("*.partial-*"))
