"""The specs of the dataset stage's jobs, built from the study plan
(:class:`resstream.workflow.plan.StudyPlan`, passed in): the image manifest of ``dataset.path``, the one
pass over it (``activations``) and one exemplar-grid job per layer.  The jobs run the entry points
beside their work (``dataset_manifest_job``, ``activations_job``, ``exemplar_grids_job``); no job
imports this module, so an edit of a budget reruns nothing.  Params hold only what changes the results: batch size, workers and the log frequency are
resources (how the job runs), so they rerun nothing.
"""

from __future__ import annotations

from resstream.base.job_resources import pass_mem_mb, pass_runtime, per_unit_runtime, small_job_mem_mb
from resstream.base.job_spec import JobSpec
from resstream.base.paths import activations_h5, exemplar_dir
from resstream.data.image_manifest import dataset_images, image_manifest_tsv, listing_fingerprint
from resstream.model.weights import model_param


def dataset_manifest_spec(plan) -> JobSpec:
    """The manifest job.  Snakemake cannot watch a folder, so its param ``listing`` is the folder's
    listing fingerprint, taken where Snakemake plans (a cheap listing, no torch): a changed, added or
    removed image changes it, which reruns the job, whose newer manifest replans its readers.  An
    ``ancient()`` manifest would never rerun, and a checkpoint would list the folder only after the
    jobs that need the listing."""
    dataset = plan.config["dataset"]["path"]
    return JobSpec(params={"dataset": dataset, "listing": lambda w: listing_fingerprint(dataset)})


def manifest_path(plan) -> str:
    """The manifest the jobs that read dataset images declare."""
    return image_manifest_tsv(plan.config["results"])


def image_reader_params(plan) -> dict:
    """The params of a job that loads the network and reads the dataset's images (the dataset pass,
    the dictionary stage): the model, its device, the image folder and what to do with a bad image."""
    model, dataset = plan.config["model"], plan.config["dataset"]
    return {
        "model": model_param(model),
        "device": model["device"],
        "dataset": dataset["path"],
        "on_bad_image": dataset["on_bad_image"],
    }


def activations_spec(plan) -> JobSpec:
    """The dataset pass: :func:`resstream.activations.stream.extract_activations`'s arguments."""
    dataset, section = plan.config["dataset"], plan.config["activations"]
    return JobSpec(
        input={"images": manifest_path(plan)},
        params={
            **image_reader_params(plan),
            "layers": plan.activation_layers(),
            "spatial_layers": plan.spatial_layers(),
            "topk": section["topk"],
            "o_relu": plan.o_relu,
        },
        resources={
            "batch_size": section["batch_size"],
            "workers": section["workers"],
            "log_every": section["log_every"],
            "runtime": lambda w, attempt: pass_runtime(dataset_images(dataset["path"]), attempt),
            "mem_mb": lambda w, attempt: pass_mem_mb(
                section["batch_size"], section["workers"], plan.spatial_bytes_per_image(), attempt
            ),
        },
    )


def exemplar_grids_spec(plan) -> JobSpec:
    """One layer's exemplar grids (wildcard ``layer``): its studied units' channels are a param, so a
    new channel selection redraws only the layers it touches."""
    units = plan.exemplar_units()
    return JobSpec(
        input={"h5": activations_h5(plan.config["results"]), "images": manifest_path(plan)},
        params={"channels": lambda w: units[w.layer]},
        resources={
            "runtime": lambda w, attempt: per_unit_runtime("exemplar_grids", len(units[w.layer]), attempt),
            "mem_mb": lambda w, attempt: small_job_mem_mb(attempt),
        },
    )


def exemplar_dirs(plan) -> list[str]:
    """Every exemplar-grid folder of the study."""
    return [exemplar_dir(plan.config["results"], layer) for layer in plan.exemplar_units()]


def block_exemplar_dirs(plan, block: str) -> list[str]:
    """Exemplar-grid folders of the I, B and O layers of one studied block."""
    return [exemplar_dir(plan.config["results"], layer) for layer in plan.block_layers(block).values()]
