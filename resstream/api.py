"""The study's stages as plain functions, for notebooks and the ``resstream`` command line.

Each function builds the workflow's configuration from its arguments (unset settings take the
schema's defaults, exactly as in the workflow) and calls the code the Snakemake jobs call, so seeds,
numbers and files are the same.  Every function that loads the network takes ``weights`` and
``checkpoint`` as ``model.weights`` and ``model.checkpoint``: ``checkpoint="any"`` accepts a
checkpoint file of one's own, recorded by its sha256 as the workflow records it.

* :func:`render_fv`: centre-neuron FVs of channels of one layer, written like an FV chunk job's
  folder (``unit{c:04d}.png`` + ``fv.h5``);
* :func:`extract_activations`: the dataset pass, one ``activations.h5``;
* :func:`unit_metrics`: one unit's M, m, n, SM and pass flags from its FV images;
* :func:`block_layers`: the layer names of a block's I, B and O.
"""

from __future__ import annotations

import logging
from pathlib import Path

from resstream.base.errors import UserError
from resstream.base.schema import default

log = logging.getLogger("resstream.api")


def _config(arch: str, weights: str, allow_download: bool, device: str, checkpoint: str, **sections) -> dict:
    """A validated workflow config (defaults filled in); ``sections`` drop their ``None`` values."""
    from resstream.workflow.config import validate_config

    config = {
        "model": {
            "arch": arch,
            "weights": weights,
            "checkpoint": checkpoint,
            "allow_download": allow_download,
            "device": device,
        }
    }
    for name, values in sections.items():
        config[name] = {k: v for k, v in values.items() if v is not None}
    config.setdefault("dataset", {}).setdefault("path", None)
    return validate_config(config)


def _model(config: dict):
    from resstream.model.device import resolve_device
    from resstream.model.weights import load_configured_model

    model, identity = load_configured_model(config["model"])
    return model.to(resolve_device(config["model"]["device"])), identity


def _refuse_existing(path: Path, what: str) -> None:
    """Before any work: ``path`` holds nothing yet and can be created."""
    from resstream.base.output_place import check_output_place

    if path.is_file() or (path.is_dir() and any(path.iterdir())):
        raise UserError(f"{path} already holds {what}; nothing was computed. Fix: delete it or choose another output")
    check_output_place(path, "--out")


def block_layers(arch: str, block: str, o_relu: str = default("study.o_relu")) -> dict[str, str]:
    """``{"I": layer, "B": layer, "O": layer}`` of one block, e.g. resnet18 "2.1"."""
    from resstream.analysis.measure import role_layers
    from resstream.model.structure import structure

    return role_layers(list(structure(arch)), block, o_relu)


def render_fv(
    layer: str,
    channels: list[int],
    out: str,
    *,
    arch: str = default("model.arch"),
    weights: str = default("model.weights"),
    checkpoint: str = default("model.checkpoint"),
    allow_download: bool = default("model.allow_download"),
    device: str = default("model.device"),
    objective: str = "center",
    jitter: int | None = None,
    **fv,
):
    """Centre-neuron FVs (``objective="channel"``: whole-map mean) of ``channels`` of ``layer``,
    written to the folder ``out`` as the FV stage writes a chunk; returns the
    :class:`~resstream.fv.render.FVResult` (float images, curves, status).

    ``fv``: the config's ``fv`` settings (``steps``, ``lr``, ``seed``, ``hook``, ``rf_crop``, ``bf16``,
    ``tf32``, ``microbatch``, ``channels_last``, ``log_every``); unset ones take the workflow's defaults, and
    ``jitter`` the layer's default (docs/method.md#feature-visualizations) unless given."""
    from resstream.fv.job import render_fv_folder
    from resstream.workflow.plan import StudyPlan

    config = _config(arch, weights, allow_download, device, checkpoint, fv=fv)
    study = StudyPlan(config)
    ref = study.layer_ref(layer)
    if jitter is not None:  # an override of the layer's block, which must then be a studied one
        config = _config(
            arch,
            weights,
            allow_download,
            device,
            checkpoint,
            study={"blocks": [ref.block]},
            fv={**fv, "overrides": {ref.block: {"jitter": jitter}}},
        )
        study = StudyPlan(config)
    n_channels = study.tap_channels(ref)
    bad = [c for c in channels if not 0 <= c < n_channels]
    if bad or not channels:
        shown = ", ".join(map(str, bad[:4])) + (", …" if len(bad) > 4 else "") if bad else "(none)"
        raise UserError(
            f"channels {shown} are not channels of {layer}, which has 0..{n_channels - 1}. "
            f"Fix: choose channels in that range"
        )
    _refuse_existing(Path(out), "files")
    model, identity = _model(config)
    return render_fv_folder(
        model,
        identity,
        study.blocks,
        layer,
        sorted(set(channels)),
        study.fv_settings(layer),
        str(out),
        objective=objective,
        log_every=config["fv"]["log_every"],
    )


def extract_activations(
    data: str,
    out: str,
    *,
    arch: str = default("model.arch"),
    weights: str = default("model.weights"),
    checkpoint: str = default("model.checkpoint"),
    allow_download: bool = default("model.allow_download"),
    device: str = default("model.device"),
    blocks=default("study.blocks"),
    o_relu: str = default("study.o_relu"),
    on_bad_image: str | None = None,
    **activations,
) -> str:
    """The dataset pass over the image folder ``data`` (class folders or flat) into the HDF5 file
    ``out`` (layout: :mod:`resstream.activations.store`): the centre neuron of every layer the study of
    ``blocks`` taps, and the top-k images of every unit.  ``activations``: the config's
    ``activations`` settings (``batch_size``, ``workers``, ``topk``, ``spatial_layers``, ``log_every``)."""
    from resstream.activations.jobs import activations_spec
    from resstream.activations.stream import activations_job
    from resstream.model.weights import check_weights_available
    from resstream.workflow.plan import StudyPlan

    _refuse_existing(Path(out), "an activations file")
    config = _config(
        arch,
        weights,
        allow_download,
        device,
        checkpoint,
        study={"blocks": blocks, "o_relu": o_relu},
        dataset={"path": str(data), "on_bad_image": on_bad_image},
        activations=activations,
    )
    model = config["model"]
    # as Snakemake's main process does before any job: the job itself never downloads
    check_weights_available(model["arch"], model["weights"], model["allow_download"], checkpoint=model["checkpoint"])
    # the activations rule's job, reading the folder itself (no image manifest outside the workflow)
    return activations_job(activations_spec(StudyPlan(config)).job(output={"h5": str(out)}, input={"images": None}))


def _fv_provenance(png: str, channel: int, identity) -> str | None:
    """The unit's FV status from the ``fv.h5`` beside its PNG (None without one), after checking
    that file names the same weights."""
    from resstream.analysis.measure import check_same_weights
    from resstream.fv.fv_file import fv_file_path, read_fv_file

    chunk_dir = str(Path(png).parent)
    if not Path(fv_file_path(chunk_dir)).is_file():
        return None
    record = read_fv_file(chunk_dir)
    check_same_weights(record.weights, identity, record.path)
    return record.status_by_channel().get(channel)


def unit_metrics(
    block: str,
    channel: int,
    fv_images: dict[str, str],
    *,
    arch: str = default("model.arch"),
    weights: str = default("model.weights"),
    checkpoint: str = default("model.checkpoint"),
    allow_download: bool = default("model.allow_download"),
    device: str = default("model.device"),
    o_relu: str = default("study.o_relu"),
    **analysis,
) -> dict:
    """One unit's row of the FV metric table (M, M_raw, mix_group, m, n, SM, pass_all, pass_nomix,
    status and the raw readings) from its FV images ``{"I": png, "B": png, "O": png}``, measured
    as the workflow measures them.  Only X_I and X_B enter the metrics (docs/method.md#measurements).  Where an
    ``fv.h5`` lies beside an image (an FV job's or :func:`render_fv`'s folder), it must name the
    same weights, and its FV status enters ``status``.  ``analysis``: ``mix_factor``,
    ``scale_rule``, ``mix_rules``, ``scale_sign`` (defaults: the workflow's)."""
    from resstream.analysis import metrics
    from resstream.analysis.measure import block_role_taps, fv_raw_rows, load_fv_png
    from resstream.analysis.summary import table_settings
    from resstream.model.preprocessing import for_arch
    from resstream.model.structure import structure

    missing = [role for role in ("I", "B") if role not in fv_images]
    if missing:
        raise UserError(f"fv_images lacks the FV of {', '.join(missing)}. Fix: pass {{'I': png, 'B': png, 'O': png}}")
    config = _config(arch, weights, allow_download, device, checkpoint, study={"o_relu": o_relu}, analysis=analysis)
    model, identity = _model(config)
    blocks = list(structure(arch))
    taps = block_role_taps(blocks, block, o_relu)
    prep = for_arch(arch)
    x_in, x_mid = load_fv_png(fv_images["I"], prep), load_fv_png(fv_images["B"], prep)
    raw = fv_raw_rows(
        model,
        blocks,
        taps,
        block,
        [channel],
        [x_in],
        [x_mid],
        config["analysis"]["batch_size"],
        device=next(model.parameters()).device,
    )
    for role, png in fv_images.items():
        status = _fv_provenance(png, channel, identity)
        if status is not None:
            raw[f"fv_status_{role}"] = status
    table = metrics.metric_table(raw, **table_settings(config["analysis"]))
    return table.iloc[0].to_dict()
