"""The specs of the FV stage's jobs, one per (layer, channel chunk): ``fv_chunk`` (centre-neuron
objective) and ``fv_channel_chunk`` (whole-map objective, the atlas's channel FVs, for the roles
``atlas.channel_fvs`` names), built from the study plan (:class:`resstream.workflow.plan.StudyPlan`,
passed in).  The jobs run :func:`resstream.fv.job.fv_chunk_job`; no job imports this module,
so an edit of a budget reruns nothing.

Per-layer settings and the chunk's channels are params: changing one block's steps or jitter
replans only that block's jobs, a new channel list only the chunks it touches.  A channel objective
gets its own layer's settings only, never cropped to a receptive field.
"""

from __future__ import annotations

from resstream.base.job_resources import fv_mem_mb, fv_runtime
from resstream.base.job_spec import JobSpec
from resstream.base.paths import channel_fv_chunk_dir, fv_chunk_dir
from resstream.model.blocks import ROLES
from resstream.model.weights import model_param

OBJECTIVES = ("center", "channel")


def objective_roles(plan, objective: str) -> tuple[str, ...]:
    """The roles whose units get FVs of ``objective``: all for the centre neuron, those of
    ``atlas.channel_fvs`` for the whole map."""
    return tuple(ROLES) if objective == "center" else plan.channel_fv_roles


def chunk_channels(plan, layer: str, chunk: str, objective: str = "center") -> list[int]:
    """The channels of one chunk job of ``objective``."""
    return list(plan.chunk(layer, chunk, objective_roles(plan, objective)).channels)


def chunk_dirs(plan, layer: str, objective: str = "center") -> list[str]:
    """The output folders of a layer's chunk jobs of ``objective``."""
    folder = fv_chunk_dir if objective == "center" else channel_fv_chunk_dir
    results = plan.config["results"]
    return [folder(results, layer, c.name) for c in plan.chunks(layer, objective_roles(plan, objective))]


def block_fv_dirs(plan, block: str) -> list[str]:
    """Centre-neuron FV chunk folders of the I, B and O layers of one studied block."""
    return [d for layer in plan.block_fv_layers(block) for d in chunk_dirs(plan, layer)]


def block_channel_fv_dirs(plan, block: str) -> list[str]:
    """Channel-FV chunk folders of the roles of one block that ``atlas.channel_fvs`` names."""
    layers = plan.block_layers(block)
    return [d for role in plan.channel_fv_roles for d in chunk_dirs(plan, layers[role], "channel")]


def chunk_layers(plan, objective: str = "center") -> list[str]:
    """The layers that have chunk jobs of ``objective``."""
    return list(plan.layers) if objective == "center" else plan.channel_fv_layers()


def all_fv_dirs(plan) -> list[str]:
    """Every centre-neuron FV chunk folder of the study (the FV stage's outputs)."""
    return [d for layer in plan.layers for d in chunk_dirs(plan, layer)]


def fv_chunk_spec(plan, objective: str = "center", gpus=lambda: 0) -> JobSpec:
    """The jobs of rule ``fv_chunk`` (``objective="channel"``: ``fv_channel_chunk``); wildcards
    ``layer`` and ``chunk``.  ``gpus()``: the GPUs each job declares (its runtime budget depends on it)."""
    fv = plan.config["fv"]

    def channels(w):
        return chunk_channels(plan, w.layer, w.chunk, objective)

    def settings(w):
        return plan.fv_settings(w.layer, objective)

    return JobSpec(
        params={
            "model": model_param(plan.config["model"]),
            "device": plan.config["model"]["device"],
            "channels": channels,
            "settings": lambda w: settings(w).as_params(),
            "objective": objective,
        },
        resources={
            "runtime": lambda w, attempt: fv_runtime(len(channels(w)), settings(w).steps, gpus(), attempt),
            "mem_mb": lambda w, attempt: fv_mem_mb(len(channels(w)), attempt),
            "log_every": fv["log_every"],
        },
    )
