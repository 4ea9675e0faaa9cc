"""resstream prepare-imagenet-val: a fake ten-image validation set, labelled by the devkit's ground
truth (+ meta.mat) and by LOC_val_solution.csv, put into class folders the dataset pass reads."""

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from resstream.cli import main
from resstream.data.dataset import scan_image_folder

# The devkit numbers its classes in an order of its own (ILSVRC2012_ID 1 is n02119789, kit fox),
# not the sorted synset order: a fake table with that property (IDs 1..1000, shuffled synsets).
RNG = np.random.default_rng(0)
SYNSETS = [f"n{n:08d}" for n in sorted(RNG.choice(10**7, 1000, replace=False) + 1440764)]
DEVKIT_ORDER = [SYNSETS[i] for i in RNG.permutation(1000)]  # DEVKIT_ORDER[id - 1] = synset of ILSVRC2012_ID id
TRUTH_IDS = [490, 361, 171, 822, 297, 482, 13, 704, 599, 164]  # ground truth of images 1..10


def expected_class(image_number: int) -> str:
    return DEVKIT_ORDER[TRUTH_IDS[image_number - 1] - 1]


@pytest.fixture
def val_set(tmp_path):
    """Ten flat JPEGs as ImageNet ships them, the devkit (ground truth + meta.mat) and the
    Kaggle LOC_val_solution.csv saying the same."""
    images = tmp_path / "val"
    images.mkdir()
    for i in range(1, 11):
        Image.new("RGB", (40 + i, 30), (20 * i, 0, 0)).save(images / f"ILSVRC2012_val_{i:08d}.JPEG")
    devkit = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    devkit.mkdir(parents=True)
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{v}\n" for v in TRUTH_IDS))
    # meta.mat as the devkit has it: 1000 leaf synsets with their IDs, then inner nodes (IDs > 1000)
    table = np.zeros((1010,), dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("num_children", "O")])
    for k, wnid in enumerate(DEVKIT_ORDER):
        table[k] = (k + 1, wnid, f"class {k + 1}", 0)
    for k in range(10):
        table[1000 + k] = (1001 + k, f"n{9000000 + k:08d}", "an inner node", 3)
    scipy.io.savemat(devkit / "meta.mat", {"synsets": table})
    loc = tmp_path / "LOC_val_solution.csv"
    rows = [f"ILSVRC2012_val_{i:08d},{expected_class(i)} 10 20 30 40 {expected_class(i)} 1 2 3 4" for i in (3, 1, 2, 4, 5, 6, 7, 8, 9, 10)]
    loc.write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    return images, devkit, loc


def class_folders(out: Path) -> dict[str, str]:
    return {p.name: p.parent.name for p in out.glob("*/*.JPEG")}


def check_prepared(images: Path, out: Path, linked: bool):
    assert class_folders(out) == {f"ILSVRC2012_val_{i:08d}.JPEG": expected_class(i) for i in range(1, 11)}
    for p in out.glob("*/*.JPEG"):
        assert p.is_symlink() == linked
        assert p.read_bytes() == (images / p.name).read_bytes()
    records = scan_image_folder(out)  # what the pre-flight and the dataset pass list
    assert len(records) == 10 and sorted({r.class_name for r in records}) == sorted(set(class_folders(out).values()))


def prepare(images, labels, out, *more) -> int:
    """``resstream prepare-imagenet-val`` with these arguments; its exit status."""
    return main(["prepare-imagenet-val", "--images", str(images), "--labels", str(labels), "--out", str(out), *map(str, more)])


def test_devkit_ground_truth_with_meta_mat(val_set, tmp_path, capsys):
    images, devkit, _ = val_set
    out = tmp_path / "prepared"
    assert prepare(images, devkit / "ILSVRC2012_validation_ground_truth.txt", out, "--synsets", devkit / "meta.mat") == 0
    check_prepared(images, out, linked=True)
    classes = len(set(class_folders(out).values()))
    assert capsys.readouterr().out.startswith(f"resstream: 10 images in {classes} class folders under {out} (links).")


def test_the_devkit_folder_as_labels_and_copies(val_set, tmp_path):
    images, devkit, _ = val_set
    out = tmp_path / "copied"
    assert prepare(images, devkit.parent, out, "--copy") == 0
    check_prepared(images, out, linked=False)


@pytest.fixture
def prepared_from_loc(val_set, tmp_path):
    """The val images prepared (linked) from LOC_val_solution.csv: (images, prepared folder)."""
    images, _, loc = val_set
    out = tmp_path / "prepared"
    assert prepare(images, loc, out) == 0
    return images, out


def test_loc_val_solution_csv(prepared_from_loc):
    images, out = prepared_from_loc
    check_prepared(images, out, linked=True)


def one_line_error(capsys, *args) -> str:
    assert main(["prepare-imagenet-val", *map(str, args)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_refusals_name_the_problem_and_change_nothing(val_set, tmp_path, capsys):
    images, devkit, loc = val_set
    truth = devkit / "ILSVRC2012_validation_ground_truth.txt"
    out = tmp_path / "out"
    line = one_line_error(capsys, "--images", images, "--labels", truth, "--out", out)
    assert line.startswith(f"resstream: {truth} holds ILSVRC2012_IDs (1-1000), which need the devkit's synset table")
    assert line.endswith("Fix: add --synsets ILSVRC2012_devkit_t12/data/meta.mat, or give the devkit folder as --labels.")
    assert not out.exists()
    # an image the labels do not know
    Image.new("RGB", (8, 8)).save(images / "ILSVRC2012_val_00000011.JPEG")
    line = one_line_error(capsys, "--images", images, "--labels", loc, "--out", out)
    assert line == (f"resstream: 1 image(s) in --images have no label in {loc}: ILSVRC2012_val_00000011. "
                    f"Fix: give the labels file of the same validation set.")
    assert not out.exists() and not list(tmp_path.glob("out.partial-*"))
    (images / "ILSVRC2012_val_00000011.JPEG").unlink()
    # an existing, non-empty output folder is left alone
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    line = one_line_error(capsys, "--images", images, "--labels", loc, "--out", out)
    assert line.startswith(f"resstream: --out {out} already exists and is not empty; nothing was changed.")
    assert os.listdir(out) == ["keep.txt"]
    # a labels file of neither format
    odd = tmp_path / "labels.csv"
    odd.write_text("file,label\nILSVRC2012_val_00000001.JPEG,3\n")
    line = one_line_error(capsys, "--images", images, "--labels", odd, "--out", tmp_path / "new")
    assert "does not start with the header ImageId,PredictionString" in line


def test_an_image_listed_twice_with_two_classes_is_refused(val_set, tmp_path, capsys):
    images, _, loc = val_set
    other = DEVKIT_ORDER[0] if expected_class(5) != DEVKIT_ORDER[0] else DEVKIT_ORDER[1]
    with open(loc, "a") as f:
        f.write(f"ILSVRC2012_val_00000001,{expected_class(1)} 1 2 3 4\n")  # again, same class: harmless
        f.write(f"ILSVRC2012_val_00000005,{other} 1 2 3 4\n")
    out = tmp_path / "out"
    line = one_line_error(capsys, "--images", images, "--labels", loc, "--out", out)
    # the header is line 1; image 5 is the 6th row of the solution (rows 3, 1, 2, 4, 5, ...)
    assert line == (f"resstream: {loc} line 13: ILSVRC2012_val_00000005 is listed again, as {other}; line 6 has it as "
                    f"{expected_class(5)}. Fix: give the unmodified LOC_val_solution.csv.")
    assert not out.exists() and not list(tmp_path.glob("out.partial-*"))


def test_two_files_of_one_image_are_refused(val_set, tmp_path, capsys):
    images, _, loc = val_set
    Image.new("RGB", (9, 9)).save(images / "ILSVRC2012_val_00000001.jpeg", "JPEG")
    out = tmp_path / "out"
    line = one_line_error(capsys, "--images", images, "--labels", loc, "--out", out)
    assert line == (f"resstream: --images {images} holds two files of image ILSVRC2012_val_00000001: "
                    f"ILSVRC2012_val_00000001.JPEG and ILSVRC2012_val_00000001.jpeg; nothing was changed. Fix: keep one "
                    f"of them.")
    assert not out.exists()


@pytest.mark.parametrize("which", ["csv", "ground truth"])
def test_a_labels_file_that_is_not_utf8_is_one_line(val_set, tmp_path, capsys, which):
    images, devkit, loc = val_set
    labels = loc if which == "csv" else devkit / "ILSVRC2012_validation_ground_truth.txt"
    text = labels.read_bytes()
    labels.write_bytes(text[:30] + b"\xff\xfe" + text[30:])
    extra = ["--synsets", devkit / "meta.mat"] if which == "ground truth" else []
    line = one_line_error(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "out", *extra)
    assert line == (f"resstream: {labels} is not a UTF-8 text file (byte 0xff at offset 30). Fix: give the labels file "
                    f"as downloaded: LOC_val_solution.csv or the devkit's ILSVRC2012_validation_ground_truth.txt, "
                    f"unpacked.")


def test_the_prepared_folder_is_a_dataset_for_the_workflow(prepared_from_loc):
    """The pre-flight's listing (the same function as the dataset pass) accepts the linked folder."""
    images, out = prepared_from_loc
    from resstream.workflow.plan import StudyPlan
    from resstream.workflow.config import validate_config
    from resstream.workflow.smk import check_inputs_or_exit

    study = StudyPlan(validate_config({"model": {"weights": "random:0"}, "dataset": {"path": str(out)}, "study": {"channels": 1}}))
    check_inputs_or_exit(study)  # returns (exits on a problem)


def test_an_out_that_is_a_file_or_lies_under_one_is_one_line(val_set, tmp_path, capsys):
    images, _, loc = val_set
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert one_line_error(capsys, "--images", images, "--labels", loc, "--out", notes) == (
        f"resstream: --out {notes} already exists and is a file; nothing was changed. Fix: choose a new folder, or "
        f"remove {notes} first.")
    assert one_line_error(capsys, "--images", images, "--labels", loc, "--out", notes / "val") == (
        f"resstream: --out {notes / 'val'}: {notes} is a file, not a folder; nothing was computed. Fix: choose --out in "
        f"a folder")
    assert notes.read_text() == "mine"
