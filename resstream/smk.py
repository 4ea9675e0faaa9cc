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


def check_config_or_exit(config: dict, basedir: str) -> Study:
    """Validate the config and resolve the study; on a user error print one line and exit 1."""
    try:
        cfg = validate_config(dict(config))
        config.clear()
        config.update(cfg)
        study = Study(cfg)
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
        hint = " (the demo expects ../shared/data/imagenet-sample beside the checkout)" if cfg.get("demo") else ""
        _die(f"dataset.path {path} is not a folder{hint}. Fix: set dataset.path to a folder of images.")
    return study


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
