"""The image manifest of a dataset folder: one TSV listing every image the jobs read (path relative to
the folder, class, size in bytes, mtime), written by its own job.  The jobs that read dataset images
declare the manifest as an input and read the images it lists, so an image that changes (size or
mtime) replans them; Snakemake cannot watch a folder itself.

The manifest job's param is the folder's listing fingerprint (:func:`listing_fingerprint`, taken
where Snakemake plans): a changed, added or removed image changes it, so Snakemake reruns the manifest
job, and the newer manifest reruns its readers.  Without torch (Snakemake's own process uses it).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import os
from dataclasses import dataclass

from resstream.base.errors import UserError
from resstream.data import image_folder
from resstream.data.image_folder import DatasetError, ImageRecord

ROOT_PREFIX = "# dataset: "  # the manifest's first line: the folder its paths are relative to
COLUMNS = ("path", "class_id", "class_name", "bytes", "mtime_ns")


def image_manifest_tsv(results: str) -> str:
    """Where a results folder keeps the manifest of ``dataset.path``."""
    return os.path.join(results, "dataset", "images.tsv")


@dataclass(frozen=True)
class ImageManifest:
    root: str  # the folder as the config names it
    records: list[ImageRecord]


@functools.lru_cache(maxsize=8)
def listed_records(path: str) -> tuple[ImageRecord, ...]:
    """The listing of ``path`` (:func:`resstream.data.image_folder.scan_image_folder`), remembered
    for the life of the process: in Snakemake's main process the pre-flight check lists the dataset
    and every job's budget and the manifest's fingerprint reuse it, so a large folder (50,000
    images, perhaps on a network file system) is listed once.  A folder that cannot be listed raises
    the listing's one-line error (not remembered)."""
    return tuple(image_folder.scan_image_folder(path))


def listed_images(path: str) -> int:
    """Images in the listing of ``path`` (:func:`listed_records`)."""
    return len(listed_records(path))


def dataset_images(path: str | None) -> int:
    """Images the dataset pass will read (0 when ``dataset.path`` is unset or unreadable: the
    pre-flight check reports that)."""
    if not path:
        return 0
    try:
        return listed_images(path)
    except UserError:
        return 0


def _stamped_rows(root: str, records) -> list[tuple[ImageRecord, int, int]]:
    """``(record, bytes, mtime_ns)`` of each of ``records`` of ``root`` (links followed)."""
    rows = []
    for record in records:
        stat = os.stat(os.path.join(root, record.path))
        rows.append((record, stat.st_size, stat.st_mtime_ns))
    return rows


@functools.lru_cache(maxsize=4)
def listing_fingerprint(root: str | None) -> str:
    """sha256 of the folder's listing with each image's size and mtime: what the manifest job's
    param holds.  Empty for an unset or unreadable folder (the pre-flight check reports that)."""
    if not root:
        return ""
    try:
        rows = _stamped_rows(root, listed_records(root))
    except (UserError, OSError):
        return ""
    digest = hashlib.sha256()
    for record, size, mtime in rows:
        digest.update(f"{record.path}\t{record.class_id}\t{size}\t{mtime}\n".encode())
    return digest.hexdigest()


def write_image_manifest(root: str, out: str) -> int:
    """The manifest of the folder ``root`` written to ``out``; returns the number of images."""
    rows = _stamped_rows(root, image_folder.scan_image_folder(root))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    partial = out + ".partial"
    with open(partial, "w", newline="") as f:
        f.write(f"{ROOT_PREFIX}{root}\n")
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        for record, size, mtime in rows:
            writer.writerow((record.path, record.class_id, record.class_name, size, mtime))
    os.replace(partial, out)
    return len(rows)


def read_image_manifest(path: str) -> ImageManifest:
    """The folder and the image records (in the dataset pass's order) a manifest lists."""
    try:
        with open(path, newline="") as f:
            first = f.readline()
            rows = list(csv.DictReader(f, delimiter="\t"))
    except OSError as exc:
        raise DatasetError(f"image manifest {path} cannot be read ({exc.strerror}). Fix: rerun the workflow, "
                           f"which writes it (snakemake {path})") from None
    if not first.startswith(ROOT_PREFIX) or (rows and set(COLUMNS) - set(rows[0])):
        raise DatasetError(f"image manifest {path} is not one the workflow wrote. Fix: delete it and rerun the workflow")
    records = [ImageRecord(i, row["path"], int(row["class_id"]), row["class_name"]) for i, row in enumerate(rows)]
    return ImageManifest(first[len(ROOT_PREFIX):].rstrip("\n"), records)


def manifest_folder(images: str, paths, activations_path: str) -> str:
    """The folder of the manifest ``images``, once it lists the images (``paths``, relative) of the
    activations file ``activations_path``: the folder a job reading that file's images opens them from."""
    manifest = read_image_manifest(images)
    if [r.path for r in manifest.records] != [str(p) for p in paths]:
        raise DatasetError(f"{activations_path} was made from other images than the image manifest {images} lists. "
                           f"Fix: rerun the activations stage (snakemake --forcerun activations)")
    return manifest.root


def dataset_manifest_job(job) -> int:
    """Entry point of the ``dataset_manifest`` job: the manifest of ``params.dataset`` in ``output.tsv``."""
    return write_image_manifest(job.params.dataset, job.output.tsv)
