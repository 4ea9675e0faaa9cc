"""The specs of the dictionary stage's jobs (off unless ``dictionary.enabled``), built from the study
plan (:class:`resstream.workflow.plan.StudyPlan`, passed in): per studied block (or, with
``dictionary.scope: stage``, per network stage) a crosscoder trained on tokens streamed from the
images the dataset's manifest lists; per block its feature pictures; one figure of the features' M
beside the channels' M.  The jobs run :func:`resstream.dictionary.stage.dictionary_job`,
:func:`resstream.dictionary.feature_fv.feature_pictures_folder` and
:func:`resstream.dictionary.figure.dictionary_figure_job`."""

from __future__ import annotations

from resstream.activations.jobs import image_reader_params, manifest_path
from resstream.analysis.jobs import metric_tables, with_sidecars
from resstream.base.job_resources import fv_mem_mb, fv_runtime, pass_runtime, small_job_mem_mb
from resstream.base.job_spec import JobSpec
from resstream.base.paths import dictionary_dir
from resstream.dictionary.settings import feature_fv_settings
from resstream.dictionary.stage_scope import stage_groups
from resstream.model.weights import model_param


def dictionary_blocks(plan) -> list[str]:
    """The blocks with a crosscoder of their own (``dictionary.scope: block``)."""
    section = plan.config["dictionary"]
    return plan.study_blocks if section["enabled"] and section["scope"] == "block" else []


def dictionary_stages(plan) -> dict[str, list[str]]:
    """``{"stage2": ["2.0", "2.1"], ...}``: one crosscoder per network stage (``dictionary.scope: stage``)."""
    section = plan.config["dictionary"]
    return stage_groups(plan.blocks, plan.study_blocks) if section["enabled"] and section["scope"] == "stage" else {}


def dictionary_dirs(plan) -> list[str]:
    results = plan.config["results"]
    return [dictionary_dir(results, name) for name in [*dictionary_blocks(plan), *dictionary_stages(plan)]]


def dictionary_spec(plan) -> JobSpec:
    """One block's crosscoder (wildcard ``block``)."""
    section = plan.config["dictionary"]
    # one truncated forward per image read, as the dataset pass
    images_read = section["tokens"] // section["positions_per_image"] + section["heldout_images"]
    return JobSpec(
        input={"images": manifest_path(plan)},
        params={
            **image_reader_params(plan),
            "o_relu": plan.o_relu,
            "section": {k: v for k, v in section.items() if k != "threads"},
        },
        resources={
            "runtime": lambda w, attempt: pass_runtime(images_read, attempt),
            "mem_mb": lambda w, attempt: small_job_mem_mb(attempt),
        },
    )


def dictionary_stage_spec(plan) -> JobSpec:
    """One network stage's crosscoder (wildcard ``stage``): the block spec, with the stage's blocks."""
    spec = dictionary_spec(plan)
    stages = dictionary_stages(plan)
    return JobSpec(
        input=spec.input, params={**spec.params, "stage_blocks": lambda w: stages[w.stage]}, resources=spec.resources
    )


def dictionary_pictures_spec(plan, gpus=lambda: 0) -> JobSpec:
    """A block's feature pictures (wildcard ``block``): for its ``dictionary.feature_pages`` most often
    firing features the centre-position FV (the FV engine, with the block's O layer's settings) and
    grids of the top held-out images and of the patches around the peak cell, read from the images
    the manifest lists.  ``gpus()``: the GPUs each job declares."""
    section, model, results = plan.config["dictionary"], plan.config["model"], plan.config["results"]
    count = section["feature_pages"]

    def settings(w):
        return feature_fv_settings(plan, w.block)

    return JobSpec(
        input={"folder": lambda w: dictionary_dir(results, w.block), "images": manifest_path(plan)},
        params={
            "model": model_param(model),
            "device": model["device"],
            "o_relu": plan.o_relu,
            "features": count,
            "page_channels": section["page_channels"],
            "dataset": plan.config["dataset"]["path"],
            "settings": lambda w: settings(w).as_params(),
        },
        resources={
            "runtime": lambda w, attempt: fv_runtime(count, settings(w).steps, gpus(), attempt),
            "mem_mb": lambda w, attempt: fv_mem_mb(count, attempt),
            "log_every": plan.config["fv"]["log_every"],
        },
    )


def dictionary_figure_spec(plan) -> JobSpec:
    blocks = dictionary_blocks(plan)
    folders = [dictionary_dir(plan.config["results"], b) for b in blocks]
    return JobSpec(
        input={"folders": folders, **with_sidecars(tables=metric_tables(plan, "fv", blocks))}, params={"blocks": blocks}
    )
