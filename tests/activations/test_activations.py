"""Dataset activations: values against an independent forward, top-k against an argsort, bad
images, resuming after a real SIGKILL, memory bounded by the batch, and the Snakemake rules."""

import copy
import json
import logging
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from helpers import REPO
from helpers.configs import changed_config_file, tiny_config
from helpers.job_calls import draw_grids, run_pass
from helpers.manual_forward import manual_layers
from helpers.workflow import assert_same_h5_content, h5_content
from resstream.activations import store as act
from resstream.activations import topk
from resstream.base.errors import ConfigError
from resstream.base.paths import activations_h5, exemplar_grid
from resstream.data.dataset import DatasetError, ImageFolderDataset, scan_image_folder
from resstream.model.weights import load_model
from resstream.workflow.config import validate_config
from resstream.workflow.plan import StudyPlan

SMALL_STUDY = {"blocks": ["1.1"]}  # the forward stops after layer1: fast


def link_classes(sample_dir, dest, n):
    """A class-folder dataset of the first n sample classes, as symlinks (no image is copied)."""
    for cls in sorted(os.listdir(sample_dir))[:n]:
        (dest / cls).mkdir(parents=True)
        for f in sorted(os.listdir(sample_dir / cls)):
            (dest / cls / f).symlink_to(sample_dir / cls / f)
    return dest


@pytest.fixture(scope="module")
def images40(sample_dir, tmp_path_factory):
    return link_classes(sample_dir, tmp_path_factory.mktemp("images40"), 40)


def make_config(root, study=None, **activations):
    return validate_config(
        tiny_config(
            data=root, study=study or {"channels": [0, 2]}, activations={"batch_size": 16, "workers": 1, **activations}
        )
    )


@pytest.fixture(scope="module")
def extracted(images40, tmp_path_factory):
    """The default study (26 layers) on 40 images, batch 16 (last batch partial), one worker."""
    results = tmp_path_factory.mktemp("results")
    config = make_config(images40, batch_size=16, workers=1, spatial_layers=["layer4.0.downsample.1", "layer1.1.bn2"])
    config["results"] = str(results)
    path = activations_h5(str(results))
    run_pass(config, path)
    return config, path


def test_stored_values_equal_an_independent_forward(extracted):
    config, path = extracted
    study = StudyPlan(config)
    model, _ = load_model("resnet18", "random:0")
    dataset = ImageFolderDataset(config["dataset"]["path"])
    with act.open_activations(path) as f:
        assert list(f["layers"]) == sorted(study.activation_layers())
        stored = {name: f["layers"][name][:] for name in f["layers"]}
        spatial = {name: f["spatial"][name][:] for name in f["spatial"]}
    assert sorted(spatial) == ["layer1.1.bn2", "layer4.0.downsample.1"]
    for start in range(0, 40, 8):
        x = torch.stack([dataset[i][0] for i in range(start, start + 8)])
        with torch.no_grad():
            ref = manual_layers(model, x)
        for name, values in stored.items():
            t = ref[name]
            centre = t[:, :, t.shape[2] // 2, t.shape[3] // 2].numpy()
            assert values.shape == (40, t.shape[1])
            np.testing.assert_allclose(values[start : start + 8], centre, atol=1e-5, rtol=0, err_msg=name)
        for name, maps in spatial.items():
            np.testing.assert_allclose(
                maps[start : start + 8].astype(np.float32), ref[name].numpy(), atol=2e-3, rtol=1e-3, err_msg=name
            )  # float16 storage
    # the centre of a stored map is the stored centre
    np.testing.assert_allclose(spatial["layer1.1.bn2"][:, :, 28, 28], stored["layer1.1.bn2"], rtol=1e-3, atol=1e-3)


def test_image_table_and_attributes(extracted):
    config, path = extracted
    records = scan_image_folder(config["dataset"]["path"])
    _, identity = load_model("resnet18", "random:0")
    with act.open_activations(path) as f:
        assert list(f["images/path"].asstr()[:]) == [r.path for r in records]
        assert list(f["images/class_id"][:]) == list(range(40))
        assert f["images/ok"][:].all()
        assert json.loads(f.attrs["weights"]) == json.loads(json.dumps(identity.as_dict()))
        assert "RANDOM WEIGHTS" in f.attrs["weights_label"]
        assert json.loads(f.attrs["layers"]) == StudyPlan(config).activation_layers()
        assert f.attrs["o_relu"] == "pre" and f.attrs["dataset_root"] == config["dataset"]["path"]
        assert f.attrs["finished_rows"] == 40 and f.attrs["finished_batches"] == 3
        assert f["layers/layer2.0.bn2"].compression == "gzip" and f["layers/layer2.0.bn2"].chunks == (16, 128)
    assert not os.path.exists(path + act.PARTIAL_SUFFIX)


def test_a_damaged_activations_file_is_told_apart_from_a_finished_one(extracted, tmp_path):
    """The workflow's pre-flight check (headers only): a finished file passes; a truncated one, one
    without its top-k tables and one not marked complete are each named with what is wrong."""
    from resstream.workflow.damaged_outputs import activations_damage

    _, path = extracted
    assert activations_damage(path) is None
    truncated, no_topk, incomplete = (shutil.copy(path, tmp_path / name) for name in ("t.h5", "k.h5", "c.h5"))
    os.truncate(truncated, os.path.getsize(truncated) - 1)
    with h5py.File(no_topk, "a") as f:
        del f["topk"]
    with h5py.File(incomplete, "a") as f:
        f.attrs["complete"] = False
    assert activations_damage(str(truncated)).startswith("truncated file: eof = ")
    assert activations_damage(str(no_topk)) == "it lacks topk"
    assert activations_damage(str(incomplete)) == "it is not marked complete"


def test_stored_topk_is_the_argsort_of_the_stored_array(extracted):
    _, path = extracted
    with act.open_activations(path) as f:
        for name in f["layers"]:
            values = f["layers"][name][:]
            index, top = f[f"topk/{name}/index"][:], f[f"topk/{name}/value"][:]
            assert index.shape == top.shape == (values.shape[1], 9) and index.dtype == np.int64
            # stable argsort of the reversed rows: among equal values the higher index comes first
            order = values.shape[0] - 1 - np.argsort(-values[::-1], axis=0, kind="stable")[:9]
            np.testing.assert_array_equal(index, order.T, err_msg=name)
            np.testing.assert_array_equal(top, np.take_along_axis(values, index.T, axis=0).T)
            assert (np.diff(top, axis=1) <= 0).all()


def test_topk_tie_rule_nan_rows_and_short_columns():
    v = np.array([[1.0, np.nan], [3.0, 2.0], [3.0, np.nan], [0.0, 5.0], [3.0, np.nan]], dtype=np.float32)
    index, value = topk.topk_rows(v, 4)
    # ties: the higher image index first, like the author's torch.sort(descending=True) (docs/method.md#imagenet-variant-a3)
    np.testing.assert_array_equal(index[0], [4, 2, 1, 0])
    np.testing.assert_array_equal(value[0], [3, 3, 3, 1])
    # NaN rows are never chosen; fewer valid rows than k pad with -1 / NaN
    np.testing.assert_array_equal(index[1], [3, 1, -1, -1])
    np.testing.assert_array_equal(value[1], [5, 2, np.nan, np.nan])
    # running top-k over row blocks equals the one-shot result
    rng = np.random.default_rng(0)
    big = rng.integers(0, 4, size=(300, 7)).astype(np.float32)
    big[rng.random(300) < 0.1] = np.nan
    top = topk.TopK(7, 9)
    for r0 in range(0, 300, 64):
        top.update(big[r0 : r0 + 64], r0)
    for got, want in zip(top.result(), topk.topk_rows(big, 9)):
        np.testing.assert_array_equal(got, want)


def test_exemplar_grids_are_drawn_for_the_studied_units_only(extracted):
    config, path = extracted
    results = config["results"]
    units = StudyPlan(config).exemplar_units()
    n = draw_grids(config, path, threads=2)  # one job per layer
    assert n == sum(len(c) for c in units.values()) == 26 * 2
    exemplars = os.path.join(results, "activations", "exemplars")
    drawn = {(d, f) for d in os.listdir(exemplars) for f in os.listdir(os.path.join(exemplars, d))}
    lists = {(layer, name) for layer in units for name in ("exemplars.csv", "exemplars.json")}
    assert drawn == {(layer, f"unit{c:04d}.png") for layer, chans in units.items() for c in chans} | lists
    with act.open_activations(path) as f:
        top = f["topk/layer3.1.bn2/index"][2]
        paths = f["images/path"].asstr()[:]
    grid = np.asarray(Image.open(exemplar_grid(results, "layer3.1.bn2", 2)))
    assert grid.shape == (3 * 224 + 4 * 2, 3 * 224 + 4 * 2, 3)
    crop = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])
    for rank in (0, 4, 8):  # tile r holds the exact pixels of the rank-r image's 224 view
        image = Image.open(os.path.join(config["dataset"]["path"], paths[top[rank]])).convert("RGB")
        y, x = 2 + (rank // 3) * 226, 2 + (rank % 3) * 226
        np.testing.assert_array_equal(grid[y : y + 224, x : x + 224], np.asarray(crop(image)))
    rows = open(os.path.join(exemplars, "layer3.1.bn2", "exemplars.csv")).read().splitlines()
    assert rows[0] == "layer,channel,rank,image_index,path,activation,weights" and len(rows) == 1 + 2 * 9
    sidecar = json.load(open(os.path.join(exemplars, "layer3.1.bn2", "exemplars.json")))
    assert sidecar["weights"]["label"].startswith("resnet18 RANDOM")
    assert f"layer3.1.bn2,2,0,{top[0]},{paths[top[0]]}," in "\n".join(rows)


def test_exemplar_units_follow_the_blocks_that_read_a_layer():
    config = validate_config({"study": {"channels": [0, 1], "channels_by_block": {"2.0": [5, 100], "2.1": [7]}}})
    units = StudyPlan(config).exemplar_units()
    assert list(units) == StudyPlan(config).activation_layers()
    assert units["layer2.0.bn2"] == [5, 100]  # FV layers: the study's channels of the layer
    assert units["layer2.0.prerelu_out"] == [5, 7, 100]  # O of 2.0 and I of 2.1
    assert units["layer2.0"] == [5, 7, 100]  # post-ReLU O of 2.0, Fig 4 input of 2.1
    assert units["layer1.1"] == [0, 1, 5]  # 1.1's own, and 2.0's channels that exist in 64-channel layer1
    assert units["layer2.1"] == [0, 1, 7]


def test_spatial_layers_must_be_tapped(images40, tmp_path):
    config = make_config(images40, SMALL_STUDY, spatial_layers=["layer4.1.bn2"])
    with pytest.raises(ConfigError, match=r"activations.spatial_layers: layer4.1.bn2 not among the tapped layers"):
        run_pass(config, str(tmp_path / "a.h5"))


@pytest.fixture
def odd_images(sample_dir, tmp_path):
    """Flat folder: real images, a grayscale one (made here, in tmp) and a corrupt file."""
    srcs = sorted(sample_dir.glob("*/*.JPEG"))[:6]
    for i, src in enumerate(srcs[:5]):
        (tmp_path / f"img{i}.JPEG").symlink_to(src)
    Image.open(srcs[5]).convert("L").save(tmp_path / "img5_gray.png")
    (tmp_path / "img2b_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    return tmp_path


def test_unreadable_image_is_skipped_as_a_nan_row(odd_images, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("skip") / "a.h5")
    run_pass(make_config(odd_images, SMALL_STUDY, batch_size=3, workers=0), out)
    with act.open_activations(out) as f:
        paths = list(f["images/path"].asstr()[:])
        bad = paths.index("img2b_corrupt.jpg")
        assert list(f["images/ok"][:]) == [i != bad for i in range(7)]
        gray = paths.index("img5_gray.png")
        for name in f["layers"]:
            values = f["layers"][name][:]
            assert np.isnan(values[bad]).all()
            assert np.isfinite(np.delete(values, bad, axis=0)).all()
            assert bad not in f[f"topk/{name}/index"][:]
        assert np.isfinite(f["layers/layer1.1.bn2"][gray]).all()


@pytest.mark.parametrize("workers", [0, 1])
def test_unreadable_image_fails_naming_the_file(odd_images, tmp_path_factory, workers):
    out = str(tmp_path_factory.mktemp("fail") / "a.h5")
    config = make_config(odd_images, SMALL_STUDY, batch_size=2, workers=workers)
    config["dataset"]["on_bad_image"] = "fail"
    with pytest.raises(DatasetError) as info:
        run_pass(config, out)
    message = str(info.value)
    assert "img2b_corrupt.jpg" in message and "on_bad_image: skip" in message
    assert "\n" not in message  # the worker's traceback is not part of the message
    assert not os.path.exists(out)


KILLED_RUN = """
import json, os, signal, sys
import h5py, torch
torch.set_num_threads(2)
kill_at, calls = int(sys.argv[1]), [0]
flush = h5py.File.flush
def flush_or_die(self):
    calls[0] += 1
    if calls[0] == kill_at:  # a real SIGKILL, in the middle of the pass
        os.kill(os.getpid(), signal.SIGKILL)
    flush(self)
h5py.File.flush = flush_or_die
sys.path.insert(0, "tests")
from helpers.job_calls import run_pass
run_pass(json.loads(sys.argv[2]), sys.argv[3])
"""


@pytest.fixture(scope="module")
def small_run(images40, tmp_path_factory):
    """An uninterrupted run of the layer1 study, batch 8 (5 batches): what resumed runs must equal."""
    config = make_config(images40, SMALL_STUDY, batch_size=8)
    path = str(tmp_path_factory.mktemp("whole") / "activations.h5")
    run_pass(config, path)
    return config, path, h5_content(path)


# The file is flushed once at creation, then twice per batch (data, then the batch counter), then
# once when complete: flush 6 = batch 3's data, 7 = batch 3's counter, 12 = the complete flag.
@pytest.mark.parametrize("kill_at, rows_on_disk", [(6, 16), (7, 16), (12, 40)])
def test_resume_after_sigkill_equals_an_uninterrupted_run(small_run, tmp_path, caplog, kill_at, rows_on_disk):
    config, _, whole = small_run
    out = str(tmp_path / "killed" / "activations.h5")
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(kill_at), json.dumps(config), out],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    # nothing under the final name; the partial file says it is not complete and readers refuse it
    assert not os.path.exists(out)
    partial = out + act.PARTIAL_SUFFIX
    with h5py.File(partial, "r") as f:
        assert not f.attrs["complete"] and f.attrs["finished_rows"] == rows_on_disk
    with pytest.raises(act.IncompleteActivationsError, match="not a complete activations file"):
        act.open_activations(partial)

    caplog.set_level(logging.INFO, logger="resstream.activations.stream")
    run_pass(config, out)
    assert f"after {rows_on_disk // 8} finished batches ({rows_on_disk}/40 images)" in caplog.text
    assert not os.path.exists(partial)
    assert_same_h5_content(h5_content(out), whole)


def test_a_partial_file_of_another_run_or_a_damaged_one_is_started_over(small_run, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="resstream.activations.stream")
    config, reference, _ = small_run
    out = str(tmp_path / "activations.h5")
    shutil.copy(reference, out + act.PARTIAL_SUFFIX)  # a "partial" made with other weights
    other = copy.deepcopy(config)
    other["model"]["weights"] = "random:1"
    run_pass(other, out)
    fresh = h5_content(out)
    assert "not resuming" in caplog.text and "different weights_state_dict_sha256; starting over" in caplog.text
    with act.open_activations(out) as f:
        assert json.loads(f.attrs["weights"])["source"] == "random:1"
        assert np.isfinite(f["layers/layer1.1.bn2"][:]).all()

    caplog.clear()
    with open(out + act.PARTIAL_SUFFIX, "wb") as f:
        f.write(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)  # the start of an HDF5 file, then nothing
    run_pass(other, out)
    assert "cannot be opened" in caplog.text and "starting over" in caplog.text
    assert_same_h5_content(h5_content(out), fresh)


MEMORY_RUN = """
import json, logging, resource, sys
import psutil, torch
torch.set_num_threads(2)
sys.path.insert(0, "tests")
from helpers.job_calls import run_pass
from resstream.model.weights import load_model
load_model("resnet18", "random:0")  # torch, the model: the baseline
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
samples = []
class Sample(logging.Handler):  # RSS at each progress line, i.e. after every batch
    def emit(self, record):
        if "img/s" in record.getMessage():
            samples.append(psutil.Process().memory_info().rss / 2**20)
log = logging.getLogger("resstream.activations.stream")
log.setLevel(logging.INFO)
log.addHandler(Sample())
run_pass(json.loads(sys.argv[1]), sys.argv[2])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"base": base, "peak": peak, "samples": samples}))
"""


def test_peak_memory_is_bounded_by_the_batch_not_the_dataset(sample_dir, tmp_path):
    """200 images, batch 8, layer1 taps, one decoding worker.  Bound: the pass adds at most 200 MB to
    the process (measured ~80 MB), and the RSS after the last batches is within 25 MB of that after
    the first ones: the working set depends on batch size and tapped layers, not on N (holding the
    images would add 0.6 MB each: 120 MB here, 30 GB for ImageNet val)."""
    images = link_classes(sample_dir, tmp_path / "images200", 200)
    config = make_config(images, SMALL_STUDY, batch_size=8, workers=1)
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_RUN, json.dumps(config), str(tmp_path / "a.h5")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads(proc.stdout.splitlines()[-1])
    samples = m["samples"]
    assert len(samples) == 25
    assert m["peak"] - m["base"] < 200, m
    assert max(samples[-6:]) - max(samples[:6]) < 25, samples


def test_workflow_makes_the_file_and_grids_and_ignores_batch_settings(shared_run, tmp_path):
    """The session's small run (tests/helpers/runs.py: 24 images in batches of 2, channels 0-2)."""
    results = shared_run.results
    target = results / "activations" / "exemplars"
    layers = ["layer1.0.prerelu_out", "layer1.1.bn2", "layer1.1.prerelu_out", "layer1.0", "layer1.1"]
    with act.open_activations(activations_h5(str(results))) as f:
        assert f["layers/layer1.1.bn2"].shape == (24, 64)
    for layer in layers:
        assert sorted(os.listdir(target / layer)) == [  # (and Snakemake's own timestamp)
            ".snakemake_timestamp",
            "exemplars.csv",
            "exemplars.json",
            "unit0000.png",
            "unit0001.png",
            "unit0002.png",
        ]
    log = (results / "logs" / "activations.log").read_text()
    assert "batch 12/12: 24/24 images written" in log and "img/s, ETA" in log

    # batch size and workers do not change results, so they do not rerun the stage
    changed = changed_config_file(shared_run.config_file, tmp_path, {"activations": {"batch_size": 4, "workers": 1}})
    proc = shared_run.smk(
        *[f"results/activations/exemplars/{layer}" for layer in layers],
        "-n",
        "--cores",
        "2",
        "--configfile",
        "demo.yaml",
        changed,
    )
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]
