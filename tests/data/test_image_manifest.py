"""The image manifest (resstream/data/image_manifest.py): it lists what the dataset pass lists, its
fingerprint follows each image's size and mtime, and the jobs refuse a manifest that is not the
workflow's or that lists other images than their activations file, in one line."""

from __future__ import annotations

import os
import shutil

import pytest

from resstream.data.image_folder import DatasetError, scan_image_folder
from resstream.data.image_manifest import (
    listed_records,
    listing_fingerprint,
    manifest_folder,
    read_image_manifest,
    write_image_manifest,
)


@pytest.fixture
def folder(sample_dir, tmp_path):
    """Three classes of the sample, copied (the tests change them)."""
    root = tmp_path / "images"
    for cls in sorted(os.listdir(sample_dir))[:3]:
        shutil.copytree(sample_dir / cls, root / cls)
    return root


def fresh_fingerprint(root) -> str:
    listed_records.cache_clear()
    listing_fingerprint.cache_clear()
    return listing_fingerprint(str(root))


def test_the_manifest_lists_what_the_pass_lists_with_sizes_and_mtimes(folder, tmp_path):
    out = tmp_path / "results" / "dataset" / "images.tsv"
    assert write_image_manifest(str(folder), str(out)) == len(scan_image_folder(folder))
    manifest = read_image_manifest(str(out))
    assert manifest.root == str(folder) and manifest.records == scan_image_folder(folder)
    rows = out.read_text().splitlines()[2:]
    first = folder / manifest.records[0].path
    assert rows[0].split("\t")[3:] == [str(first.stat().st_size), str(first.stat().st_mtime_ns)]


def test_the_fingerprint_follows_each_images_size_mtime_and_the_listing(folder):
    before = fresh_fingerprint(folder)
    assert fresh_fingerprint(folder) == before
    image = folder / scan_image_folder(folder)[0].path
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = fresh_fingerprint(folder)
    assert touched != before
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fresh_fingerprint(folder) == before
    shutil.copyfile(image, image.with_name("another.jpg"))
    assert fresh_fingerprint(folder) not in (before, touched)
    assert fresh_fingerprint(folder / "absent") == "" == listing_fingerprint(None)


def test_a_manifest_that_is_missing_or_not_the_workflows_is_one_line(tmp_path):
    missing = tmp_path / "images.tsv"
    with pytest.raises(DatasetError) as err:
        read_image_manifest(str(missing))
    assert str(err.value) == (f"image manifest {missing} cannot be read (No such file or directory). Fix: rerun the "
                              f"workflow, which writes it (snakemake {missing})")
    missing.write_text("path\tbytes\n")
    with pytest.raises(DatasetError) as err:
        read_image_manifest(str(missing))
    assert str(err.value) == f"image manifest {missing} is not one the workflow wrote. Fix: delete it and rerun the workflow"


def test_a_job_refuses_activations_of_other_images_than_the_manifest(folder, tmp_path):
    out = tmp_path / "images.tsv"
    write_image_manifest(str(folder), str(out))
    paths = [r.path for r in scan_image_folder(folder)]
    assert manifest_folder(str(out), paths, "activations.h5") == str(folder)
    with pytest.raises(DatasetError) as err:
        manifest_folder(str(out), paths[1:], "activations.h5")
    assert str(err.value) == (f"activations.h5 was made from other images than the image manifest {out} lists. "
                              f"Fix: rerun the activations stage (snakemake --forcerun activations)")
