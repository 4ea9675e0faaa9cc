"""The model card: spec §1's layer table for the configured model, plus the weights identity."""

from __future__ import annotations

import csv
import json

from .config import Study
from .weights import load_model


def write_model_card(config: dict, json_path: str, csv_path: str) -> dict:
    study = Study(config)
    model_cfg = config["model"]
    # Loading the weights here makes a missing or corrupt checkpoint fail at the first job.
    _model, identity = load_model(model_cfg["arch"], model_cfg["weights"], model_cfg["allow_download"])
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
    with open(json_path, "w") as f:
        json.dump(card, f, indent=2)
    with open(csv_path, "w", newline="") as f:
        f.write(f"# weights: {identity.label}\n")
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return card
