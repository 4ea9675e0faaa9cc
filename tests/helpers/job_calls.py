"""The workflow's jobs run here as their rules run them, from a validated config: each job is made
from its stage's spec (resstream/<stage>/jobs.py), which the rule declares too, and handed to the
entry point its script calls."""

from __future__ import annotations

from resstream.fv.jobs import block_fv_dirs as fv_dirs_of_block  # noqa: F401  (the FV folders a block's measurement reads)
from resstream.workflow.plan import StudyPlan


def render_chunk(config: dict, layer: str, chunk: str, out_dir: str, objective: str = "center") -> dict:
    """The fv_chunk job (``objective="channel"``: the fv_channel_chunk job) of one chunk."""
    from resstream.fv.job import fv_chunk_job
    from resstream.fv.jobs import fv_chunk_spec

    return fv_chunk_job(
        fv_chunk_spec(StudyPlan(config), objective).job(output={"folder": out_dir}, layer=layer, chunk=chunk)
    )


def run_pass(config: dict, out_path: str) -> str:
    """The activations job, reading the folder itself (no image manifest here)."""
    from resstream.activations.jobs import activations_spec
    from resstream.activations.stream import activations_job

    return activations_job(activations_spec(StudyPlan(config)).job(output={"h5": out_path}, input={"images": None}))


def draw_grids(config: dict, h5_path: str, threads: int = 1) -> int:
    """The exemplar_grids job of every layer that has one; returns the number of grids."""
    from resstream.activations.exemplars import exemplar_grids_job
    from resstream.activations.jobs import exemplar_grids_spec
    from resstream.base.paths import exemplar_dir

    plan = StudyPlan(config)
    spec = exemplar_grids_spec(plan)
    return sum(
        exemplar_grids_job(
            spec.job(
                output={"folder": exemplar_dir(config["results"], layer)},
                input={"h5": h5_path, "images": None},
                threads=threads,
                layer=layer,
            )
        )
        for layer in plan.exemplar_units()
    )
