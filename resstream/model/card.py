"""The model card: the layer table (docs/method.md#taps-i-b-and-o) for the configured model, plus the weights identity."""

from __future__ import annotations

import os

import pandas as pd

from resstream.base.tables import sidecar_json, write_table
from resstream.model.weights import load_model_param


def card_facts(study) -> dict:
    """What the model card states about the study (the ``model_card`` rule's ``card`` param): the
    architecture and its family's block semantics, every block of the model (module path, class,
    whether it has a residual sum: blocks without one are listed and never studied), ``o_relu``,
    the studied blocks, the FV layers and the layer table (one row per block and role,
    :meth:`resstream.workflow.plan.StudyPlan.layer_table`)."""
    from resstream.model.families import SEMANTICS

    return {
        "arch": study.arch,
        "family": study.family,
        "block_semantics": SEMANTICS[study.family],
        "model_blocks": [
            {
                "block": b.name,
                "module": b.module,
                "class": b.block_class,
                "stage": b.stage,
                "residual_sum": b.has_sum,
                "after_sum": b.after_sum or "none",
                "studied": b.name in study.study_blocks,
            }
            for b in study.blocks
        ],
        "blocks_without_residual_sum": [b.name for b in study.blocks if not b.has_sum],
        "o_relu": study.o_relu,
        "blocks": study.study_blocks,
        "fv_layers": {name: [f"{b}:{r}" for b, r in uses] for name, uses in study.layers.items()},
        "units": sum(len(study.layer_channels(layer)) for layer in study.layers),
        "layers": study.layer_table(),
    }


def write_model_card(model: dict, facts: dict, json_path: str, csv_path: str) -> dict:
    """``model_card.csv`` (the layer table, ``facts["layers"]``) and ``model_card.json``, which is
    the CSV's sidecar (:func:`resstream.base.tables.write_table`): ``facts`` with the weights identity.
    ``model``: the rule's model param (:func:`resstream.model.weights.model_param`)."""
    if os.path.abspath(json_path) != os.path.abspath(sidecar_json(csv_path)):
        raise ValueError(f"the model card's JSON must sit beside its CSV as {sidecar_json(csv_path)}, not {json_path}")
    # Loading the weights here makes a missing or corrupt checkpoint fail at the first job.
    _model, identity = load_model_param(model)
    card = {"arch": facts["arch"], "weights": identity.as_dict(), **{k: v for k, v in facts.items() if k != "arch"}}
    write_table(pd.DataFrame(facts["layers"]), csv_path, card)
    return card


def model_card_job(job) -> dict:
    """Entry point of the ``model_card`` job (its spec: :mod:`resstream.model.jobs`)."""
    return write_model_card(job.params.model, job.params.card, job.output.json, job.output.csv)
