"""ImageNet's validation images, put into the class folders the dataset pass reads.

ImageNet ships the 50,000 validation images flat (``ILSVRC2012_val_00000001.JPEG`` ...); their
classes are in a separate labels file.  Two labels files are understood:

* ``LOC_val_solution.csv`` (the Kaggle ImageNet Object Localization download): a header
  ``ImageId,PredictionString`` and per image ``ILSVRC2012_val_00000001,n01751748 x y x y ...``;
  the class is the first synset of the prediction string.
* the devkit's ``ILSVRC2012_validation_ground_truth.txt``: line i holds the ILSVRC2012_ID (1-1000)
  of image i.  Those IDs follow the devkit's own synset order, not the sorted synset ids, so they
  need the devkit's ``data/meta.mat`` to become synsets (``--synsets``, or give the unpacked
  devkit folder as the labels).  A synset list in text form is not accepted: the common ones
  (``LOC_synset_mapping.txt``, ``synsets.txt``) are in sorted order, and reading the IDs against
  them would label every image wrongly without any error.

The result is ``out/{synset}/ILSVRC2012_val_XXXXXXXX.JPEG``, symbolic links to the images (or
copies), built under a temporary name and renamed into place when complete; an existing non-empty
``out`` is never touched.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from resstream.base.errors import UserError
from resstream.base.output_place import check_output_place
from resstream.base.outputs import partial_dir, publish_dir

VAL_IMAGE = re.compile(r"^ILSVRC2012_val_(\d{8})\.JPEG$", re.IGNORECASE)
SYNSET = re.compile(r"^n\d{8}$")
DEVKIT_GROUND_TRUTH = os.path.join("data", "ILSVRC2012_validation_ground_truth.txt")
DEVKIT_META = os.path.join("data", "meta.mat")
CLASSES = 1000


class PrepareError(UserError, ValueError):
    """Labels or images that cannot be put into class folders; the message says why and the fix."""


@dataclass(frozen=True)
class Prepared:
    out: str
    images: int
    classes: int
    labelled_not_found: int
    copied: bool


def _listed(names, first: int = 3) -> str:
    names = list(names)
    return ", ".join(names[:first]) + (f" and {len(names) - first} more" if len(names) > first else "")


# -- labels ---------------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    """A labels file's text; bytes that are not UTF-8 (a zip, a re-encoded copy) are one line."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PrepareError(f"{path} is not a UTF-8 text file (byte 0x{data[exc.start]:02x} at offset {exc.start}). Fix: "
                           f"give the labels file as downloaded: LOC_val_solution.csv or the devkit's "
                           f"ILSVRC2012_validation_ground_truth.txt, unpacked.") from None


def read_loc_solution(path: Path) -> dict[str, str]:
    """``{image id: synset}`` from ``LOC_val_solution.csv``; an image listed twice with two
    classes is refused (which one is right cannot be told)."""
    labels: dict[str, str] = {}
    first_line: dict[str, int] = {}
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
        raise PrepareError(f"{path} does not start with the header ImageId,PredictionString of LOC_val_solution.csv. "
                           f"Fix: give LOC_val_solution.csv, or the devkit's ground truth with --synsets meta.mat.")
    for line, row in enumerate(reader, start=2):
        synset = row[1].split()[0] if len(row) > 1 and row[1].split() else ""
        if not SYNSET.match(synset):
            raise PrepareError(f"{path} line {line}: '{','.join(row)[:80]}' has no synset (nXXXXXXXX) first in its "
                               f"PredictionString. Fix: give the unmodified LOC_val_solution.csv.")
        image = row[0].strip()
        if labels.get(image, synset) != synset:
            raise PrepareError(f"{path} line {line}: {image} is listed again, as {synset}; line {first_line[image]} "
                               f"has it as {labels[image]}. Fix: give the unmodified LOC_val_solution.csv.")
        labels[image] = synset
        first_line.setdefault(image, line)
    return labels


def read_devkit_synsets(meta_mat: Path) -> dict[int, str]:
    """``{ILSVRC2012_ID: synset}`` of the 1000 classes, from the devkit's ``meta.mat``."""
    import numpy as np
    import scipy.io

    try:
        synsets = scipy.io.loadmat(meta_mat, squeeze_me=True)["synsets"]
        table = {int(np.asarray(s["ILSVRC2012_ID"]).ravel()[0]): str(np.asarray(s["WNID"]).ravel()[0])
                 for s in np.atleast_1d(synsets)}
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise PrepareError(f"{meta_mat} is not the devkit's meta.mat (a 'synsets' table with ILSVRC2012_ID and WNID): "
                           f"{exc}. Fix: give ILSVRC2012_devkit_t12/data/meta.mat.") from None
    missing = [i for i in range(1, CLASSES + 1) if i not in table]
    if missing:
        raise PrepareError(f"{meta_mat} lacks ILSVRC2012_ID(s) {_listed(map(str, missing))} of the 1000 classes. "
                           f"Fix: give the devkit's unmodified meta.mat.")
    return {i: table[i] for i in range(1, CLASSES + 1)}


def read_devkit_ground_truth(path: Path, synsets: Path | None) -> dict[str, str]:
    """``{image id: synset}`` from ``ILSVRC2012_validation_ground_truth.txt`` and ``meta.mat``."""
    if synsets is None:
        raise PrepareError(
            f"{path} holds ILSVRC2012_IDs (1-1000), which need the devkit's synset table to become class folders. "
            f"Fix: add --synsets ILSVRC2012_devkit_t12/data/meta.mat, or give the devkit folder as --labels."
        )
    by_id = read_devkit_synsets(synsets)
    labels: dict[str, str] = {}
    for line, text in enumerate(_read_text(path).splitlines(), start=1):
        value = text.strip()
        if not value:
            continue
        if not value.isdigit() or not 1 <= int(value) <= CLASSES:
            raise PrepareError(f"{path} line {line}: '{value[:40]}' is not an ILSVRC2012_ID (1-1000). "
                               f"Fix: give the devkit's ILSVRC2012_validation_ground_truth.txt, or LOC_val_solution.csv.")
        labels[f"ILSVRC2012_val_{line:08d}"] = by_id[int(value)]
    return labels


def read_labels(labels: Path, synsets: Path | None = None) -> dict[str, str]:
    """``{image id (file name without .JPEG): synset}`` from any accepted labels file (see the
    module's docstring); the unpacked devkit folder stands for its ground truth and ``meta.mat``."""
    labels = Path(labels)
    if labels.is_dir():
        truth, meta = labels / DEVKIT_GROUND_TRUTH, labels / DEVKIT_META
        if not truth.is_file():
            raise PrepareError(f"--labels {labels} is a folder without {DEVKIT_GROUND_TRUTH}. Fix: give the unpacked devkit "
                               f"(ILSVRC2012_devkit_t12), LOC_val_solution.csv or the ground-truth file itself.")
        return read_devkit_ground_truth(truth, synsets or (meta if meta.is_file() else None))
    if not labels.is_file():
        raise PrepareError(f"--labels {labels} does not exist. Fix: give LOC_val_solution.csv, the devkit's "
                           f"ILSVRC2012_validation_ground_truth.txt (with --synsets meta.mat) or the devkit folder.")
    if labels.suffix.lower() == ".csv":
        return read_loc_solution(labels)
    return read_devkit_ground_truth(labels, synsets)


# -- the class folders ----------------------------------------------------------------------------------


def val_images(images: Path) -> dict[str, Path]:
    """``{image id: path}`` of the flat ``ILSVRC2012_val_*.JPEG`` files in ``images`` (any case);
    two files of one image (``…01.JPEG`` and ``…01.jpeg``) are refused, not one of them dropped."""
    if not Path(images).is_dir():
        raise PrepareError(f"--images {images} is not a folder. Fix: give the folder of the flat ILSVRC2012_val_*.JPEG files.")
    found: dict[str, Path] = {}
    for entry in sorted(os.scandir(images), key=lambda e: e.name):
        m = VAL_IMAGE.match(entry.name)
        if m and entry.is_file():
            image = f"ILSVRC2012_val_{m.group(1)}"
            if image in found:
                raise PrepareError(f"--images {images} holds two files of image {image}: {found[image].name} and "
                                   f"{entry.name}; nothing was changed. Fix: keep one of them.")
            found[image] = Path(entry.path)
    if not found:
        raise PrepareError(f"--images {images} holds no ILSVRC2012_val_*.JPEG files. Fix: give the folder of the flat "
                           f"validation images (already in class folders? then use it as dataset.path directly).")
    return found


def prepare_val_folder(images: str | Path, labels: str | Path, out: str | Path, copy: bool = False,
                       synsets: str | Path | None = None) -> Prepared:
    """Link (or copy) every validation image into ``out/{synset}/``; see the module's docstring."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "is not empty" if out.is_dir() else "is a file"
        raise PrepareError(f"--out {out} already exists and {what}; nothing was changed. Fix: choose a new "
                           f"folder, or remove {out} first.")
    check_output_place(out, "--out")
    found = val_images(Path(images))
    by_image = read_labels(Path(labels), Path(synsets) if synsets else None)
    unlabelled = [name for name in found if name not in by_image]
    if unlabelled:
        raise PrepareError(f"{len(unlabelled)} image(s) in --images have no label in {labels}: {_listed(unlabelled)}. "
                           f"Fix: give the labels file of the same validation set.")
    tmp = Path(partial_dir(str(out)))
    try:
        for name, src in found.items():
            dest = tmp / by_image[name] / src.name
            dest.parent.mkdir(exist_ok=True)
            if copy:
                shutil.copy2(src, dest)
            else:
                dest.symlink_to(src.resolve())
        publish_dir(str(tmp), str(out), PrepareError(f"--out {out} was filled by something else meanwhile; nothing was changed."))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Prepared(str(out), len(found), len({by_image[n] for n in found}), len(by_image) - len(found), copy)
