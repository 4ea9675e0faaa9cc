"""Glue between Snakemake and the library: config checks at parse time, logging in scripts.

Known problems (bad config, missing weights, unreadable data) end with ONE line that names the
problem and the fix, not a traceback; anything unexpected keeps its traceback in the rule's log.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from .config import ConfigError, Study, validate_config
from .errors import UserError


def check_config_or_exit(config: dict, basedir: str, preflight: bool = False, dry_run: bool = False) -> Study:
    """Validate the config and resolve the study; on a user error print one line and exit 1.

    ``preflight`` (Snakemake's main process only, not every job's re-parse): also check, before
    any job starts, the inputs whose absence would otherwise fail jobs only after Snakemake has
    removed their outdated outputs: every block's channel selection, the weights (file present,
    sha256) and that the dataset folder holds images."""
    try:
        cfg = validate_config(dict(config))
        config.clear()
        config.update(cfg)
        study = Study(cfg)
        for block in study.study_blocks:
            study.block_channels(block)
    except ConfigError as exc:
        _die(str(exc))
    path = cfg["dataset"]["path"]
    if path is None:
        _die(
            "dataset.path is not set: point it at your ImageNet validation folder "
            "(snakemake --cores N --config 'dataset={path: /data/imagenet/val}'), "
            "or run the small demo instead: make demo"
        )
    if not Path(path).is_dir():
        if cfg.get("demo"):
            _die(f"dataset.path {path} is not a folder: the demo's sample is missing. Fix: make demo (or resstream "
                 f"fetch-sample --dest {path}) fetches it; set RESSTREAM_SAMPLE to a local copy when offline.")
        _die(f"dataset.path {path} is not a folder. Fix: set dataset.path to a folder of images.")
    if preflight:
        model = cfg["model"]
        from .weights import check_weights_available  # torch is loaded by now (the study plan)

        try:
            # a dry run never downloads weights; a real run fetches missing hub weights here, once
            check_weights_available(model["arch"], model["weights"], model["allow_download"], fetch=not dry_run)
        except UserError as exc:
            _die(str(exc))
        if not _holds_an_image(Path(path)):
            _die(
                f"dataset.path {path} holds no image files (.jpg, .jpeg, .png, ...), neither in class "
                f"sub-folders nor flat. Fix: point dataset.path at a folder with images."
            )
    return study


def _holds_an_image(root: Path) -> bool:
    """True as soon as one image file is found (top level or class folders): cheap on 50,000."""
    from .data import IMAGE_EXTENSIONS
    for _dirpath, dirnames, files in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in files):
            return True
    return False


def _die(message: str):
    print(f"resstream: {message}", file=sys.stderr)
    sys.exit(1)


def script_main(snakemake, work, level=logging.INFO):
    """Run ``work(config)`` with logging sent to the rule's log file (and stderr)."""
    log_path = snakemake.log[0] if len(snakemake.log) else None
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", handlers=handlers, force=True)
    threads = getattr(snakemake, "threads", None)
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    try:
        return work(snakemake.config)
    except UserError as exc:
        logging.getLogger("resstream").error("%s", exc)
        print(f"resstream: {exc}", file=sys.stderr)
        sys.exit(1)
