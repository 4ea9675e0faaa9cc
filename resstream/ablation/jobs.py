"""The spec of the ``ablation`` job (off unless ``ablation.enabled``), built from the study plan
(:class:`resstream.workflow.plan.StudyPlan`, passed in): the blocks' metric tables its channel sets come
from (list sets need none), ``activations.h5`` for the mean constants, and the dataset's image
manifest where it reads ``dataset.path``.  The job runs :func:`resstream.ablation.stage.ablation_job`."""

from __future__ import annotations

from resstream.activations.jobs import manifest_path
from resstream.analysis.summary import metric_table_csv
from resstream.base.job_resources import pass_mem_mb, pass_runtime
from resstream.base.job_spec import JobSpec
from resstream.base.paths import activations_h5
from resstream.base.tables import sidecar_json
from resstream.data.image_manifest import dataset_images
from resstream.model.weights import model_param

# how the job runs, not what it writes: resources, never params
HOW_IT_RUNS = ("batch_size", "workers", "threads", "enabled")


def ablation_dataset(plan) -> str:
    return plan.config["ablation"]["dataset"] or plan.config["dataset"]["path"]


def ablation_tables(plan) -> dict:
    """``{block: metric table, or None where only list sets are asked for}``."""
    section, results = plan.config["ablation"], plan.config["results"]
    needs_table = bool(set(section["sets"]) - {"list"})
    return {b: metric_table_csv(results, b, section["table"]) if needs_table else None for b in section["blocks"]}


def forwards_per_image(section: dict) -> int:
    """The plain network and each condition (target + trials) per scale."""
    conditions = len(section["blocks"]) * len(section["sets"]) * len(section["kinds"]) * len(section["paths"])
    return len(section["scales"]) * (1 + conditions * (1 + section["trials"]))


def ablation_spec(plan) -> JobSpec:
    section, model = plan.config["ablation"], plan.config["model"]
    dataset = ablation_dataset(plan)
    tables = ablation_tables(plan)
    listed = [t for t in tables.values() if t]
    inputs = {
        "tables": listed,
        "tables_meta": [sidecar_json(t) for t in listed],
        "h5": [activations_h5(plan.config["results"])] if "mean" in section["kinds"] else [],
    }
    if dataset == plan.config["dataset"]["path"]:
        inputs["images"] = manifest_path(plan)
    return JobSpec(
        input=inputs,
        params={
            "model": model_param(model),
            "device": model["device"],
            "dataset": dataset,
            "activations": inputs["h5"][0] if inputs["h5"] else None,
            "tables": tables,
            "layers": {b: plan.block_layers(b) for b in section["blocks"]},
            "settings": {k: v for k, v in section.items() if k not in HOW_IT_RUNS},
        },
        resources={
            "batch_size": section["batch_size"],
            "workers": section["workers"],
            "runtime": lambda w, attempt: pass_runtime(dataset_images(dataset) * forwards_per_image(section), attempt),
            "mem_mb": lambda w, attempt: pass_mem_mb(
                section["batch_size"] * len(section["scales"]), section["workers"], 0, attempt
            ),
        },
    )
