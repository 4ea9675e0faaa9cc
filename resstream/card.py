"""The model card: spec §1's layer table for the configured model, plus the weights identity."""

from __future__ import annotations

import os

import pandas as pd

from .analysis import sidecar_json, write_table
from .config import Study
from .weights import load_configured_model


def write_model_card(config: dict, json_path: str, csv_path: str) -> dict:
    """``model_card.csv`` (the layer table, one row per block and role) and ``model_card.json``,
    which is the CSV's sidecar (``resstream.analysis.write_table``): the card with the weights."""
    if os.path.abspath(json_path) != os.path.abspath(sidecar_json(csv_path)):
        raise ValueError(f"the model card's JSON must sit beside its CSV as {sidecar_json(csv_path)}, not {json_path}")
    study = Study(config)
    model_cfg = config["model"]
    # Loading the weights here makes a missing or corrupt checkpoint fail at the first job.
    _model, identity = load_configured_model(model_cfg)
    rows = study.layer_table()
    card = {
        "arch": study.arch,
        "weights": identity.as_dict(),
        "o_relu": study.o_relu,
        "blocks": study.study_blocks,
        "fv_layers": {name: [f"{b}:{r}" for b, r in uses] for name, uses in study.layers.items()},
        "units": sum(len(study.layer_channels(layer)) for layer in study.layers),
        "layers": rows,
    }
    write_table(pd.DataFrame(rows), csv_path, card)
    return card
