"""Output folders that were renamed, moved to their new names on a results folder made before.

The channel-objective FVs lived under ``fv_channel_chunks/`` (and their logs and benchmarks under
``logs/`` and ``benchmarks/`` likewise); they now live under ``channel_fv/``, beside ``fv/`` (the
centre-neuron FVs), so one word means one thing: ``channel_fv`` is a channel-objective FV wherever it
appears (folder, config key ``atlas.channel_fvs``, figure input).  Snakemake's main process moves an
old folder's contents into the new one before it plans (:func:`move_renamed_outputs`), so a finished
FV is kept, never recomputed; the jobs that read them (atlas pages, Figs 1 and 6) rerun once, since
their inputs' paths changed.
"""

from __future__ import annotations

import os

# old path -> new path, relative to the results folder; each holds {layer}/{chunk}[.log|.tsv]
RENAMED = {
    "fv_channel_chunks": "channel_fv",
    os.path.join("logs", "fv_channel_chunks"): os.path.join("logs", "channel_fv"),
    os.path.join("benchmarks", "fv_channel_chunks"): os.path.join("benchmarks", "channel_fv"),
}


def move_renamed_outputs(results: str) -> list[str]:
    """Move what the old folders under ``results`` hold to the new ones; returns one line per
    folder moved or left.  A layer's chunk that exists under both names is left where it is (the
    new one is never overwritten), and the line says so."""
    lines = []
    for old, new in RENAMED.items():
        old_path, new_path = os.path.join(results, old), os.path.join(results, new)
        if not os.path.isdir(old_path):
            continue
        kept = _move_entries(old_path, new_path, depth=2)
        if kept:
            lines.append(
                f"{old_path} was renamed {new_path}: moved what it held there except {len(kept)} "
                f"entr{'y' if len(kept) == 1 else 'ies'} already present under the new name, left in "
                f"place (e.g. {kept[0]}). Fix: compare them and delete the one you do not want"
            )
        else:
            _remove_empty(old_path)
            lines.append(f"moved {old_path} to {new_path} (the folder's new name)")
    return lines


def _move_entries(src: str, dst: str, depth: int) -> list[str]:
    """Move ``src`` to ``dst``; where ``dst`` exists, move ``src``'s entries one level down
    (at most ``depth`` levels: layer folders are merged, chunk folders moved whole).  Returns
    the paths left in place because their new path exists."""
    if not os.path.exists(dst):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.rename(src, dst)
        return []
    if depth == 0 or not (os.path.isdir(src) and os.path.isdir(dst)):
        return [src]
    kept = []
    for name in sorted(os.listdir(src)):
        kept += _move_entries(os.path.join(src, name), os.path.join(dst, name), depth - 1)
    return kept


def _remove_empty(path: str) -> None:
    """Remove the emptied old folder tree (never a file)."""
    for root, _dirs, files in os.walk(path, topdown=False):
        if not files and not os.listdir(root):
            os.rmdir(root)
