"""The workflow's job entry points called as their rules call them, from a validated config: each
argument is what the rule declares for that job (rules/*.smk), built here from the study plan."""

from __future__ import annotations

from resstream.workflow.plan import Study
from resstream.model.weights import model_param


def render_chunk(config: dict, layer: str, chunk: str, out_dir: str, objective: str = "center") -> dict:
    """The fv_chunk job (``objective="channel"``: the fv_channel_chunk job) of one chunk."""
    from resstream.fv.job import run_fv_chunk

    study = Study(config)
    roles = study.channel_fv_roles if objective == "channel" else None
    found = study.chunk(layer, chunk, roles) if roles else study.chunk(layer, chunk)
    return run_fv_chunk(model_param(config["model"]), layer, list(found.channels),
                        study.fv_settings(layer, objective).as_params(), out_dir, objective=objective,
                        device=config["model"]["device"], log_every=config["fv"]["log_every"])


def run_pass(config: dict, out_path: str) -> str:
    """The activations job."""
    from resstream.activations.stream import extract_activations

    study, run = Study(config), config["activations"]
    return extract_activations(
        out_path, model=model_param(config["model"]), dataset=config["dataset"]["path"],
        on_bad_image=config["dataset"]["on_bad_image"], layers=study.activation_layers(),
        spatial_layers=study.spatial_layers(), topk=run["topk"], o_relu=study.o_relu, batch_size=run["batch_size"],
        workers=run["workers"], log_every=run["log_every"], device=config["model"]["device"],
    )


def draw_grids(config: dict, h5_path: str, threads: int = 1) -> int:
    """The exemplar_grids job of every layer that has one; returns the number of grids."""
    from resstream.activations.exemplars import write_exemplar_grids
    from resstream.base.paths import exemplar_dir

    units = Study(config).exemplar_units()
    return sum(write_exemplar_grids(h5_path, layer, chans, exemplar_dir(config["results"], layer), threads)
               for layer, chans in units.items())


def fv_dirs_of_block(study: Study, block: str) -> list[str]:
    """The FV chunk folders a block's measurement reads (its I, B and O layers)."""
    from resstream.base.paths import fv_chunk_dir

    return [fv_chunk_dir(study.config["results"], layer, c.name) for layer in study.block_fv_layers(block)
            for c in study.chunks(layer)]
