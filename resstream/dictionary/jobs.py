"""The specs of the dictionary stage's jobs (off unless ``dictionary.enabled``), built from the study
plan (:class:`resstream.workflow.plan.Study`, passed in): per studied block a crosscoder trained on
tokens streamed from the images the dataset's manifest lists, and one figure of the features' M
beside the channels' M.  The jobs run :func:`resstream.dictionary.stage.dictionary_job` and
:func:`resstream.dictionary.figure.dictionary_figure_job`."""

from __future__ import annotations

from resstream.activations.jobs import manifest_path
from resstream.analysis.jobs import metric_tables, with_sidecars
from resstream.base.job_resources import pass_runtime, small_job_mem_mb
from resstream.base.job_spec import JobSpec
from resstream.model.weights import model_param


def dictionary_blocks(plan) -> list[str]:
    return plan.study_blocks if plan.config["dictionary"]["enabled"] else []


def dictionary_dirs(plan) -> list[str]:
    return [f"{plan.config['results']}/dictionary/{b}" for b in dictionary_blocks(plan)]


def dictionary_spec(plan) -> JobSpec:
    """One block's crosscoder (wildcard ``block``)."""
    section, model, dataset = plan.config["dictionary"], plan.config["model"], plan.config["dataset"]
    # one truncated forward per image read, as the dataset pass
    images_read = section["tokens"] // section["positions_per_image"] + section["heldout_images"]
    return JobSpec(
        input={"images": manifest_path(plan)},
        params={"model": model_param(model), "device": model["device"], "dataset": dataset["path"],
                "on_bad_image": dataset["on_bad_image"], "o_relu": plan.o_relu,
                "section": {k: v for k, v in section.items() if k != "threads"}},
        resources={"runtime": lambda w, attempt: pass_runtime(images_read, attempt),
                   "mem_mb": lambda w, attempt: small_job_mem_mb(attempt)},
    )


def dictionary_figure_spec(plan) -> JobSpec:
    blocks = dictionary_blocks(plan)
    return JobSpec(input={"folders": dictionary_dirs(plan), **with_sidecars(tables=metric_tables(plan, "fv", blocks))},
                   params={"blocks": blocks})
