"""Bad input: each case ends with an error that names the problem and the fix, and leaves every
finished output it does not concern as it was (bytes and mtimes checked before and after).

Config-, weights- and dataset-folder problems are caught in snakemake's main process before any
job starts, so snakemake never gets to remove the (then outdated) outputs of the jobs it planned.

The finished run is the session's small run (tests/helpers/runs.py: blocks 1.1 and 2.1, channels
0-2, every stage); the two tests that redo a chunk work on a copy of it.
"""

import os
import re
import shutil

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from helpers.configs import tiny_config_file, write_config
from helpers.workflow import FV_LAYERS_11, link_images, one_line, planned_jobs, smk
from resstream.fv.png_files import FVFileError, check_fv_png
from resstream.model.weights import load_model

# the run's outputs, relative to its folder (where snakemake runs)
TARGETS = ["results/model_card.json", "results/activations/activations.h5"] + [
    f"results/fv/{layer}/c0000-0063" for layer in FV_LAYERS_11
]


def snapshot(results, skip=()):
    """{file: (mtime_ns, bytes)} of every finished output (logs, benchmark files and snakemake's own
    files aside: they record runs, not results)."""
    out = {}
    for p in sorted(results.rglob("*")):
        rel = str(p.relative_to(results))
        if (
            p.is_file()
            and not rel.startswith(("logs", "benchmarks"))
            and ".snakemake" not in p.name
            and not rel.startswith(skip)
        ):
            out[rel] = (p.stat().st_mtime_ns, p.read_bytes())
    return out


def run_with(finished, tmp_path, change, env=None, args=None):
    """Rerun the finished study (its ``TARGETS``, or ``args``) with a changed config; expect a failure."""
    cfg = finished.config
    change(cfg)
    config = write_config(tmp_path / "bad.yaml", cfg)
    before = snapshot(finished.results)
    args = TARGETS if args is None else args
    proc = finished.smk(*args, "--cores", "2", "--configfile", "demo.yaml", config, env=env, check=False)
    assert proc.returncode != 0
    assert snapshot(finished.results) == before  # nothing finished was removed or rewritten
    return proc


def test_missing_pretrained_weights_offline(shared_run, tmp_path):
    def change(cfg):
        cfg["model"].update(weights="IMAGENET1K_V1", allow_download=False)

    env = dict(os.environ, TORCH_HOME=str(tmp_path / "empty-torch-home"))
    line = one_line(run_with(shared_run, tmp_path, change, env=env))
    cached = tmp_path / "empty-torch-home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert line == (
        f"resstream: weights resnet18 IMAGENET1K_V1 are not in torch's hub cache ({cached}) and downloads are "
        f"disabled. Fix: copy resnet18-f37072fd.pth there (or point TORCH_HOME at a cache holding it), or set "
        f"model.weights to a local checkpoint path; for a test run use model.weights: random:0."
    )


def test_offline_with_downloads_allowed_stops_before_any_job(shared_run, tmp_path):
    """The main process fetches missing hub weights before any job runs; offline (a dead proxy
    here, so the test does not depend on this machine's network) it stops with one line."""
    env = dict(
        os.environ,
        TORCH_HOME=str(tmp_path / "empty-torch-home"),
        https_proxy="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        http_proxy="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
    )
    proc = run_with(
        shared_run, tmp_path, lambda cfg: cfg["model"].update(weights="IMAGENET1K_V1", allow_download=True), env=env
    )
    line = one_line(proc)
    assert (
        line.startswith("resstream: weights resnet18 IMAGENET1K_V1 are not in torch's hub cache (")
        and "download failed" in line
    )
    assert "rule " not in proc.stdout + proc.stderr  # no job was started


def test_checkpoint_with_a_wrong_sha256(shared_run, tmp_path):
    fake = tmp_path / "resnet18-f37072fd.pth"
    torch.save({"fc.weight": torch.zeros(2)}, fake)

    line = one_line(run_with(shared_run, tmp_path, lambda cfg: cfg["model"].update(weights=str(fake))))
    assert line.startswith(f"resstream: checkpoint {fake} has sha256 ")
    assert line.endswith(
        "expected f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec for "
        "resnet18-f37072fd.pth: the file is corrupt or not torchvision's. Fix: download it again "
        "or point model.weights at the right file."
    )


def test_unknown_block(shared_run, tmp_path):
    line = one_line(run_with(shared_run, tmp_path, lambda cfg: cfg["study"].update(blocks=["1.1", "2.7"])))
    assert line == (
        "resstream: study.blocks: unknown block '2.7'; resnet18 has blocks 1.0, 1.1, 2.0, 2.1, 3.0, 3.1, 4.0, 4.1"
    )


def test_channel_out_of_range(shared_run, tmp_path):
    line = one_line(run_with(shared_run, tmp_path, lambda cfg: cfg["study"].update(channels=[0, 64])))
    assert line == ("resstream: study.channels: channel(s) [64] out of range for block 1.1, which has channels 0..63")


def test_empty_dataset_folder(shared_run, tmp_path):
    empty = tmp_path / "empty"
    (empty / "n01440764").mkdir(parents=True)
    line = one_line(run_with(shared_run, tmp_path, lambda cfg: cfg["dataset"].update(path=str(empty))))
    assert line == (
        f"resstream: dataset.path {empty} holds no image files (.jpg, .jpeg, .png, .bmp, .webp, .tif, "
        f".tiff, .ppm, .pgm), neither in class sub-folders nor flat. Fix: point dataset.path at a folder "
        f"with images."
    )


# --- no typo deletes finished work ----------------------------------------------------------------------
# Each wrong value, set after the finished run, stops the whole workflow (snakemake's default target,
# every stage) with one line, and every finished output keeps its bytes and mtime. Config values stop
# before Snakemake plans anything; what a run reads (weights, dataset, device) stops before the first
# job starts, i.e. before Snakemake removes the outputs it plans to redo.

TAPPED = (
    "layer1.0.prerelu_out, layer1.0, layer1.1.bn2, layer1.1.prerelu_out, layer1.1, "
    "layer2.0.prerelu_out, layer2.0, layer2.1.bn2, layer2.1.prerelu_out, layer2.1"
)


def _set(section, **values):
    return lambda cfg: cfg.setdefault(section, {}).update(values)


CONFIG_TYPOS = {
    "spatial layer": (
        _set("activations", spatial_layers=["layer1.1.bn3"]),
        f"resstream: activations.spatial_layers: layer1.1.bn3 not among the tapped layers of this study ({TAPPED})",
    ),
    "override layer": (
        _set("fv", overrides={"layer1.1.bn3": {"steps": 3}}),
        "resstream: fv.overrides: 'layer1.1.bn3' is neither a studied block (1.1, 2.1) nor an FV layer "
        "(layer1.0.prerelu_out, layer1.1.bn2, layer1.1.prerelu_out, layer2.0.prerelu_out, "
        "layer2.1.bn2, layer2.1.prerelu_out)",
    ),
    "channels of an unstudied block": (
        _set("study", channels_by_block={"2.0": [0]}),
        "resstream: study.channels_by_block: block '2.0' is not among study.blocks (1.1, 2.1)",
    ),
    "fig3_fig4_blocks": (
        _set("analysis", fig3_fig4_blocks=["2.0"]),
        "resstream: analysis.fig3_fig4_blocks: block(s) 2.0 not among study.blocks (1.1, 2.1)",
    ),
    "figure channel not studied": (
        _set("analysis", figure_channels={"1.1": [5]}),
        "resstream: analysis.figure_channels.1.1: channel(s) [5] are not among the channels "
        "studied in block 1.1 (study.channels / study.channels_by_block); Fig 1 shows "
        "measured channels only",
    ),
    "figure channel block": (
        _set("analysis", figure_channels={"1.9": [0]}),
        "resstream: analysis.figure_channels.1.9: resnet18 has no block 1.9; its blocks are "
        "1.0, 1.1, 2.0, 2.1, 3.0, 3.1, 4.0, 4.1",
    ),
    "atlas role": (
        _set("atlas", channel_fvs=["O", "X"]),
        "resstream: invalid config: atlas.channel_fvs.1: 'X' is not one of ['I', 'B', 'O']",
    ),
    "o_relu": (
        _set("study", o_relu="Pre"),
        "resstream: invalid config: study.o_relu: 'Pre' is not one of ['pre', 'post']",
    ),
    "random seed": (
        _set("model", weights="random:O"),
        "resstream: model.weights 'random:O': random weights need an integer seed, e.g. random:0.",
    ),
    "key typo": (
        _set("analysis", mix_factr=2),
        "resstream: unknown key `analysis.mix_factr`; did you mean `mix_factor`?",
    ),
    "mix_factor .inf": (
        _set("analysis", mix_factor=float("inf")),
        "resstream: invalid config: analysis.mix_factor: inf is not a finite number; analysis.mix_factor "
        "takes a finite number with 1 < mix_factor <= 1000",
    ),
    "lr .nan": (
        _set("fv", lr=float("nan")),
        "resstream: invalid config: fv.lr: nan is not a finite number; fv.lr takes a finite number with 0 < lr <= 10",
    ),
    # the huge learning rates that made every unit NaN (1e36) or Adam overflow (1e38) in a job no
    # longer reach one (tests/fv/test_fv.py renders with them directly)
    "per-layer lr": (
        _set("fv", overrides={"layer1.1.bn2": {"lr": 1e36}}),
        "resstream: invalid config: fv.overrides.layer1.1.bn2.lr: 1e+36 is out of range; "
        "fv.overrides.layer1.1.bn2.lr takes a finite number with 0 < lr <= 10",
    ),
    "pass batch": (
        _set("activations", batch_size=100_000_000),
        "resstream: invalid config: activations.batch_size: 100000000 is out of range; activations.batch_size "
        "takes an integer with 1 <= batch_size <= 1024",
    ),
    "checkpoint mode without a file": (
        _set("model", checkpoint="any"),
        "resstream: model.checkpoint: any is for a checkpoint file, but model.weights is "
        "'random:0'. Fix: set model.weights to the file's path, or model.checkpoint back "
        "to torchvision.",
    ),
}


@pytest.mark.parametrize("case", list(CONFIG_TYPOS))
def test_a_config_typo_stops_before_planning_and_keeps_every_output(shared_run, tmp_path, case):
    change, expected = CONFIG_TYPOS[case]
    proc = run_with(shared_run, tmp_path, change, args=[])
    assert one_line(proc) == expected
    assert "Building DAG" not in proc.stdout + proc.stderr  # stopped while parsing, before planning


def test_a_compare_run_that_is_not_finished(shared_run, tmp_path):
    nowhere = tmp_path / "other-run"
    proc = run_with(shared_run, tmp_path, _set("compare", runs={"resnet34": str(nowhere)}), args=[])
    assert one_line(proc) == (
        f"resstream: compare.runs.resnet34: {nowhere}/summary.json does not exist. Fix: run that "
        f"workflow to its summary first."
    )


def test_a_custom_checkpoint_that_does_not_fit(shared_run, tmp_path):
    path = tmp_path / "resnet50_finetuned.pth"
    model, _ = load_model("resnet50", "random:0")
    torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()}, "optimizer": {}}, path)
    proc = run_with(shared_run, tmp_path, _set("model", weights=str(path), checkpoint="any"), args=[])
    line = one_line(proc)
    # resnet50 has every key resnet18 has (other shapes) and more
    assert line.startswith(
        f"resstream: model.weights checkpoint {path} does not fit resnet18: unexpected keys "
        f"layer1.0.conv3.weight, layer1.0.bn3.weight, layer1.0.bn3.bias, layer1.0.bn3.running_mean and "
    )
    assert "; wrong shapes layer1.0.conv1.weight [64, 64, 1, 1] (expected [64, 64, 3, 3]), " in line
    assert "rule " not in proc.stdout + proc.stderr  # no job was started


def test_a_dataset_with_a_link_cycle(shared_run, tmp_path, sample_dir):
    data = link_images(sample_dir, tmp_path / "data", 2)
    loop = next(data.iterdir()) / "again"
    loop.symlink_to(data)
    line = one_line(run_with(shared_run, tmp_path, _set("dataset", path=str(data)), args=[]))
    assert line == (
        f"resstream: dataset.path {data} has a link cycle: {loop} leads back to {os.path.realpath(data)}, "
        f"a folder above it. Fix: remove or repoint that link."
    )


def test_cuda_without_a_visible_device(shared_run, tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # no GPU visible here, even on a machine with one
    line = one_line(
        run_with(shared_run, tmp_path, _set("model", device="cuda"), env=env, args=["--forcerun", "atlas_index"])
    )
    assert line.startswith("resstream: model.device is 'cuda' but no CUDA device is visible to this local run.")


def test_symlinked_class_folders_pass_the_preflight(shared_run, tmp_path, sample_dir):
    """Class folders that are links (a shared copy of ImageNet): the dry run plans the dataset pass."""
    base = shared_run.config
    linked = tmp_path / "linked"
    linked.mkdir()
    for cls in sorted(os.listdir(sample_dir))[:3]:
        (linked / cls).symlink_to(sample_dir / cls)
    cfg = dict(base, dataset={"path": str(linked)}, results=str(tmp_path / "results"))
    write_config(tmp_path / "linked.yaml", cfg)
    jobs = planned_jobs(
        tmp_path / "results" / "activations" / "activations.h5", "--configfile", "demo.yaml", tmp_path / "linked.yaml"
    )
    assert list(jobs) == ["dataset_manifest", "activations"]  # the pass reads the images its manifest lists


def test_report_captions_come_from_the_outputs(shared_run, tmp_path):
    """--report with another config (other steps, mix factor, weights not on this machine, no
    dataset): captions describe the outputs, and the report says at its top how the config differs."""
    cfg = shared_run.config
    cfg["fv"]["steps"] = 999
    cfg["analysis"]["mix_factor"] = 3.0
    cfg["dataset"]["path"] = str(tmp_path / "no-dataset")
    cfg["model"]["weights"] = "IMAGENET1K_V1"
    other = tmp_path / "other.yaml"
    write_config(other, cfg)
    report = tmp_path / "report.html"
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "empty-torch-home"))
    before = snapshot(shared_run.results)
    shared_run.smk("--configfile", "demo.yaml", other, "--report", report, env=env)
    assert snapshot(shared_run.results) == before
    text = report.read_text()
    # every figure's caption and the scorecard's, from the chunks' fv.h5 and the tables' sidecars
    assert text.count("FV 2 steps, lr 0.05, hook") == 9
    assert text.count("mix factor 1.5;") == 9 and "999 steps" not in text and "mix factor 3.0" not in text
    assert text.count("RANDOM WEIGHTS (random:0, not pretrained)") >= 9
    assert (
        "The config given to --report differs from what made these outputs; every caption describes the\\n"
        "outputs:</strong> model.weights IMAGENET1K_V1 given, outputs made with random:0; analysis.mix_factor 3.0 "
        "given, outputs made with 1.5; fv.steps 999 given, outputs made with 2; dataset.path "
        f"{tmp_path / 'no-dataset'} given, outputs made from data."
    ) in text  # the run's (relative) dataset.path
    assert not (tmp_path / "empty-torch-home").exists()  # nothing was fetched


def test_unlock_needs_neither_weights_nor_data(shared_run, tmp_path):
    cfg = dict(
        shared_run.config,
        dataset={"path": str(tmp_path / "no-dataset")},
        model={"weights": "IMAGENET1K_V1", "allow_download": True},
    )
    other = tmp_path / "other.yaml"
    write_config(other, cfg)
    dead = "http://127.0.0.1:9"
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "torch"), https_proxy=dead, HTTPS_PROXY=dead)
    proc = shared_run.smk("--configfile", "demo.yaml", other, "--unlock", env=env)
    assert "Unlocked working directory." in proc.stdout + proc.stderr
    assert not (tmp_path / "torch").exists()


@pytest.fixture
def corrupt_dataset(sample_dir, tmp_path):
    data = link_images(sample_dir, tmp_path / "data", 3)
    bad = next(data.iterdir()) / "zz_broken.JPEG"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    return data, bad


def test_corrupt_jpeg_skipped_and_recorded(corrupt_dataset, tmp_path):
    data, bad = corrupt_dataset
    config = tiny_config_file(tmp_path, data)
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
    config = tiny_config_file(tmp_path, data, dataset={"on_bad_image": "fail"})
    h5 = tmp_path / "results" / "activations" / "activations.h5"
    proc = smk(h5, "--cores", "2", "--configfile", "demo.yaml", config, check=False)
    assert proc.returncode != 0
    line = one_line(proc)
    assert line.startswith(f"resstream: cannot read image {bad}: ")
    assert line.endswith("Fix: replace or remove the file, or set dataset.on_bad_image: skip")
    assert str(tmp_path / "results" / "logs" / "activations.log") in proc.stderr  # the log it names
    assert not h5.exists()  # the partial file never gets the final name


def test_fv_png_of_the_wrong_size_is_refused_naming_the_file(shared_run, tmp_path):
    """The measurement stage reloads FV PNGs through this check, so it names the file."""
    chunk = tmp_path / "c0000-0063"
    shutil.copytree(shared_run.results / "fv" / "layer1.1.bn2" / "c0000-0063", chunk)
    check_fv_png(str(chunk / "unit0000.png"))  # what the FV stage wrote passes
    Image.new("RGB", (112, 112)).save(chunk / "unit0000.png")
    with pytest.raises(FVFileError) as err:
        check_fv_png(str(chunk / "unit0000.png"))
    assert str(err.value) == (
        f"FV image {chunk}/unit0000.png is a 112x112 RGB PNG, not the 224x224 RGB PNG the FV stage writes: it was "
        f"replaced or damaged. Fix: delete the chunk folder {chunk} and rerun snakemake (it redoes that chunk), "
        f"or restore the file from the chunk's fv.h5 (dataset 'image')."
    )
    from resstream.analysis.measure import load_fv_png

    with pytest.raises(FVFileError, match=f"FV image {chunk}/unit0000.png is a 112x112"):
        load_fv_png(str(chunk / "unit0000.png"))  # what measure_fv_block calls for every unit
    (chunk / "unit0000.png").write_bytes(b"garbage")
    with pytest.raises(FVFileError, match="cannot be read"):
        check_fv_png(str(chunk / "unit0000.png"))


def test_a_non_finite_fv_lr_on_the_command_line_is_refused_before_any_job(shared_run):
    """`--config "fv={lr: inf}"` arrives as the string 'inf': typed, it is refused by the pre-flight
    and no finished FV (nor anything else) is rerun, removed or rewritten."""
    before = snapshot(shared_run.results)
    proc = shared_run.smk(
        "--cores",
        "2",
        "--configfile",
        "demo.yaml",
        shared_run.config_file.name,
        "--config",
        "fv={lr: inf}",
        check=False,
    )
    assert proc.returncode != 0
    assert one_line(proc) == (
        "resstream: invalid config: fv.lr: inf is not a finite number; fv.lr takes a finite number with 0 < lr <= 10"
    )
    assert "rule " not in proc.stdout + proc.stderr  # no job was started
    assert snapshot(shared_run.results) == before
    assert any(rel.startswith("fv/") and rel.endswith("fv.h5") for rel in before)


def _damaged_line(path, output, aside):
    return (
        f"resstream: {path} is damaged \\(truncated file: .*\\); moved {output} aside to {aside} \\(kept, not "
        f"deleted\\)\\. Fix: run the same snakemake command again: it remakes {output} and what reads it"
    )


def _truncate(path):
    size = path.stat().st_size
    os.truncate(path, size // 2)
    return path.read_bytes()


def test_a_truncated_activations_file_is_moved_aside_before_snakemake_removes_anything(shared_run, tmp_path):
    run = shared_run.copy(tmp_path / "run")
    h5 = "activations/activations.h5"
    damaged = _truncate(run.results / h5)
    before = snapshot(run.results)
    assert len([rel for rel in before if rel.endswith("_raw.csv")]) == 4  # the tables the issue saw removed
    proc = run.smk("--cores", "2", "--configfile", "demo.yaml", run.config_file.name, check=False)
    assert proc.returncode == 1
    aside = r"results/activations/activations\.h5\.damaged-\d{8}T\d{6}Z"
    assert re.fullmatch(
        _damaged_line(r"results/activations/activations\.h5", r"results/activations/activations\.h5", aside),
        one_line(proc),
    ), proc.stderr[-2000:]
    assert "rule " not in proc.stdout + proc.stderr  # stopped before planning: no job, nothing removed
    after = snapshot(run.results)
    [kept] = [rel for rel in after if rel.startswith(h5 + ".damaged-")]
    assert after.pop(kept)[1] == damaged  # kept, byte for byte
    assert after == {k: v for k, v in before.items() if k != h5}
    # the rerun no longer fails on it: it plans to remake the file, and what reads it
    jobs = planned_jobs("--configfile", "demo.yaml", run.config_file.name, cwd=run.root)
    assert "activations" in jobs and "measure_imagenet" in jobs


def test_a_damaged_fv_chunk_is_named_in_a_dry_run_and_moved_aside_by_a_run(shared_run, tmp_path):
    run = shared_run.copy(tmp_path / "run")
    chunk = "fv/layer1.1.bn2/c0000-0063"
    _truncate(run.results / chunk / "fv.h5")
    before = snapshot(run.results)
    args = ("--cores", "2", "--configfile", "demo.yaml", run.config_file.name)
    dry = run.smk("-n", *args, check=False)
    assert dry.returncode == 1 and snapshot(run.results) == before  # a dry run moves nothing
    assert re.fullmatch(
        f"resstream: results/{chunk}/fv\\.h5 is damaged \\(truncated file: .*\\); a run without "
        f"--dry-run moves results/{chunk} aside to results/{chunk}\\.damaged-<UTC time> \\(kept, not "
        f"deleted\\) and the run after it remakes it",
        one_line(dry),
    ), dry.stderr[-2000:]
    proc = run.smk(*args, check=False)
    assert proc.returncode == 1 and "rule " not in proc.stdout + proc.stderr
    aside = f"results/{chunk}\\.damaged-\\d{{8}}T\\d{{6}}Z"
    assert re.fullmatch(_damaged_line(f"results/{chunk}/fv\\.h5", f"results/{chunk}", aside), one_line(proc))
    after = snapshot(run.results)
    moved = {rel.replace(rel.split("/")[2], "c0000-0063", 1): v for rel, v in after.items() if ".damaged-" in rel}
    assert moved == {rel: v for rel, v in before.items() if rel.startswith(chunk + "/")}  # the folder, as it was
    assert {k: v for k, v in after.items() if ".damaged-" not in k} == {
        k: v for k, v in before.items() if not k.startswith(chunk + "/")
    }


def test_commands_that_run_no_job_are_told_apart_from_runs():
    from resstream.workflow.smk import maintenance_requested

    for argv in (
        ["--unlock"],
        ["--report", "r.html"],
        ["--report=r.html"],
        ["-S"],
        ["--lint"],
        ["--cleanup-metadata", "x"],
    ):
        assert maintenance_requested(argv), argv
    for argv in ([], ["--cores", "2", "--report", "r.html", "--report-after-run"], ["-n", "--cores", "2"]):
        assert not maintenance_requested(argv), argv


def test_an_output_moved_aside_keeps_its_bytes_under_a_new_name(tmp_path):
    from resstream.workflow.damaged_outputs import move_aside

    first, second = tmp_path / "a.h5", tmp_path / "b"
    first.write_bytes(b"damaged")
    kept = move_aside(str(first))
    assert not first.exists() and open(kept, "rb").read() == b"damaged"
    assert re.fullmatch(re.escape(str(first)) + r"\.damaged-\d{8}T\d{6}Z", kept)
    first.write_bytes(b"again")  # the same second: a second name, nothing overwritten
    again = move_aside(str(first))
    assert again != kept and open(again, "rb").read() == b"again" and open(kept, "rb").read() == b"damaged"
    second.mkdir()
    (second / "fv.h5").write_bytes(b"x")
    assert open(os.path.join(move_aside(str(second)), "fv.h5"), "rb").read() == b"x"
