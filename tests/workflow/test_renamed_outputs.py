"""A results folder made before the channel-FV folders were renamed (fv_channel_chunks/ ->
channel_fv/): its finished channel FVs, logs and benchmarks are moved, never recomputed or lost."""

import io
import os

import h5py

from helpers.workflow import smk, tree_bytes
from resstream.workflow.damaged_outputs import FV_H5_DATASETS
from resstream.workflow.renamed_outputs import move_renamed_outputs

LAYER, CHUNK = "layer1.1.prerelu_out", "c0000-0063"


def fv_h5_bytes() -> bytes:
    """A chunk's fv.h5 as the pre-flight's check of damaged outputs reads a finished one (its
    datasets, one value each)."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for name in FV_H5_DATASETS:
            f.create_dataset(name, data=[0])
    return buffer.getvalue()


FV_H5 = fv_h5_bytes()


def old_results(results):
    """An old run's channel-FV chunk folder, log and benchmark, each with distinct bytes."""
    chunk = results / "fv_channel_chunks" / LAYER / CHUNK
    chunk.mkdir(parents=True)
    files = {
        chunk / "fv.h5": FV_H5,
        chunk / "unit0000.png": b"png bytes",
        chunk / ".snakemake_timestamp": b"",
        results / "logs" / "fv_channel_chunks" / LAYER / f"{CHUNK}.log": b"log lines",
        results / "benchmarks" / "fv_channel_chunks" / LAYER / f"{CHUNK}.tsv": b"s\th:m:s\n1.0\t0:00:01\n",
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return {str(p.relative_to(results)).replace("fv_channel_chunks", "channel_fv"): data for p, data in files.items()}


def test_old_folders_move_to_their_new_names_with_every_byte(tmp_path):
    want = old_results(tmp_path)
    lines = move_renamed_outputs(str(tmp_path))
    assert lines == [
        f"moved {tmp_path / old} to {tmp_path / new} (the folder's new name)"
        for old, new in [
            ("fv_channel_chunks", "channel_fv"),
            ("logs/fv_channel_chunks", "logs/channel_fv"),
            ("benchmarks/fv_channel_chunks", "benchmarks/channel_fv"),
        ]
    ]
    assert tree_bytes(tmp_path) == want
    assert sorted(os.listdir(tmp_path)) == ["benchmarks", "channel_fv", "logs"]
    assert move_renamed_outputs(str(tmp_path)) == []  # nothing left to move


def test_a_chunk_under_both_names_is_left_and_named(tmp_path):
    old_results(tmp_path)
    newer = tmp_path / "channel_fv" / LAYER / CHUNK
    newer.mkdir(parents=True)
    (newer / "fv.h5").write_bytes(b"newer h5")
    other = tmp_path / "fv_channel_chunks" / "layer2.1.prerelu_out" / CHUNK
    other.mkdir(parents=True)
    (other / "fv.h5").write_bytes(b"layer2 h5")
    lines = move_renamed_outputs(str(tmp_path))
    old_chunk = tmp_path / "fv_channel_chunks" / LAYER / CHUNK
    assert lines[0] == (
        f"{tmp_path / 'fv_channel_chunks'} was renamed {tmp_path / 'channel_fv'}: moved what it held "
        f"there except 1 entry already present under the new name, left in place (e.g. {old_chunk}). "
        f"Fix: compare them and delete the one you do not want"
    )
    assert (newer / "fv.h5").read_bytes() == b"newer h5" and (old_chunk / "fv.h5").read_bytes() == FV_H5
    assert (tmp_path / "channel_fv" / "layer2.1.prerelu_out" / CHUNK / "fv.h5").read_bytes() == b"layer2 h5"


def test_snakemake_moves_them_before_planning_and_plans_no_new_fv_for_them(tmp_path, sample_dir):
    results = tmp_path / "results"
    want = old_results(results)
    proc = smk(
        "-n",
        "--cores",
        "2",
        "--configfile",
        "demo.yaml",
        "--config",
        f"results={results}",
        f"dataset={{path: {sample_dir}}}",
    )
    assert (
        f"resstream: moved {results / 'fv_channel_chunks'} to {results / 'channel_fv'} (the folder's new name)"
        in proc.stderr
    )
    assert tree_bytes(results) == want
    planned = {line.split("output: ")[1] for line in proc.stdout.splitlines() if line.strip().startswith("output: ")}
    # the moved chunk counts as finished; the other layer's channel FVs are still to be made
    assert str(results / "channel_fv" / LAYER / CHUNK) not in planned
    assert str(results / "channel_fv" / "layer2.1.prerelu_out" / CHUNK) in planned
