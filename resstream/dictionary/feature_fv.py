"""Centre-position feature visualizations of dictionary features, through the FV engine.

A feature's objective is its encoder *pre-activation* at the centre cell of its block: the block's
input taps (I and B by default) at that cell, divided by the token's scale as in training, times the
feature's encoder column, plus its bias.  Not the TopK'd value: that one is 0, with no gradient,
whenever the feature is not among the k winners (which a random start almost always is), and it
depends on the other features' values; where the feature wins, the two are equal.

Everything else is the channel FVs' engine (:func:`resstream.fv.render.render_units`): the same
parameterisation, transforms, steps, seeds per unit and receptive-field crop (planned on the block's
O, whose window holds I's and B's), all of a block's chosen features optimised as one batch.
"""

from __future__ import annotations

import json
import logging
import math
import os

import numpy as np
import torch
from PIL import Image

from resstream.base.outputs import partial_dir, publish_dir, remove_stale_partials
from resstream.dictionary.crosscoder import EPS, TopKCrosscoder
from resstream.dictionary.exemplars import patch_box, write_exemplar_grids
from resstream.dictionary.train import load_dictionary
from resstream.fv.render import FVError, render_units
from resstream.fv.settings import FVSettings
from resstream.model.blocks import role_tap
from resstream.model.device import resolve_device
from resstream.model.preprocessing import for_arch
from resstream.model.walk import model_blocks
from resstream.model.weights import load_model_param

log = logging.getLogger(__name__)


class FeatureMaps:
    """An FV readout (:class:`resstream.fv.render.ChannelMaps`' contract): unit ``f``'s map is feature
    ``f``'s encoder pre-activation at every cell of the block's grid."""

    def __init__(self, crosscoder: TopKCrosscoder, blocks, block: str, o_relu: str):
        self.refs = [role_tap(blocks, block, role, o_relu) for role in crosscoder.inputs]
        self.taps = list(dict.fromkeys(self.refs))
        self.w_enc, self.b_enc = crosscoder.W_enc.detach(), crosscoder.b_enc.detach()

    def __call__(self, taps: dict, units: torch.Tensor) -> torch.Tensor:
        x = torch.cat([taps[r] for r in self.refs], dim=1)  # [n, d_in, H, W]: a token per cell
        scale = (x.norm(dim=1) / math.sqrt(x.shape[1])).clamp_min(EPS)  # the crosscoder's per-token scale
        w = self.w_enc.to(x.device)[:, units].T  # [n, d_in]: each unit's own encoder column
        return torch.einsum("nchw,nc->nhw", x, w) / scale + self.b_enc.to(x.device)[units][:, None, None]


def chosen_features(features: list[dict], count: int) -> list[dict]:
    """The records (of ``features.json``) of the ``count`` features that fired most often on the
    held-out images (ties: lower index first), in feature order; features that never fired are left
    out.  These get an FV, exemplar grids and an atlas page."""
    live = sorted((x for x in features if x["firing"] > 0), key=lambda x: (-x["firing"], x["feature"]))
    return sorted(live[:count], key=lambda x: x["feature"])


def writes_most(crosscoder: TopKCrosscoder, feature: int, channels: int) -> list[list]:
    """``[[channel, weight], ...]``: the ``channels`` channels of O the feature's decoder writes with
    the largest magnitude, largest first (the atlas links the feature from their unit pages)."""
    w = crosscoder.W_dec["O"][feature].detach().double()
    order = torch.argsort(-w.abs(), stable=True)[:channels]
    return [[int(c), float(w[c])] for c in order]


def feature_png_name(feature: int) -> str:
    return f"feature{feature:05d}.png"


def render_feature_fvs(
    net,
    identity,
    crosscoder: TopKCrosscoder,
    block: str,
    o_relu: str,
    features: list[int],
    settings: FVSettings,
    log_every: int = 1,
):
    """The FVs of ``features`` of block ``block``'s crosscoder (an :class:`~resstream.fv.render.FVResult`
    whose ``channels`` are the features)."""
    blocks = model_blocks(net)
    crosscoder = crosscoder.to(next(net.parameters()).device)

    def progress(step, steps, elapsed, values):
        log.info("step %d/%d  %.1f s  mean objective %.3f", step, steps, elapsed, float(np.nanmean(values)))

    return render_units(
        net,
        blocks,
        f"dictionary.{block}",
        role_tap(blocks, block, "O", o_relu),
        features,
        **settings.as_params(),
        log_every=log_every,
        progress=progress,
        preprocessing=for_arch(identity.arch),
        readout=FeatureMaps(crosscoder, blocks, block, o_relu),
    )


def feature_pictures_folder(
    out_dir: str,
    *,
    model: dict,
    dictionary_dir: str,
    dataset: str,
    block: str,
    o_relu: str,
    count: int,
    page_channels: int,
    settings: dict,
    device: str,
    log_every: int = 1,
    gpus: int | None = None,
) -> str:
    """The ``dictionary_pictures`` job: per chosen feature (:func:`chosen_features`) ``feature{f:05d}.png``
    (its FV) and its exemplar grids (:mod:`resstream.dictionary.exemplars`), and ``pictures.json``
    (per feature: objective at the first and last step, status, exemplar patch boxes, the channels
    its decoder writes most; the FV settings and the weights), built aside and renamed into place."""
    remove_stale_partials(out_dir)
    net, identity = load_model_param(model)
    net = net.to(resolve_device(device, gpus)).eval()
    crosscoder, _, _ = load_dictionary(os.path.join(dictionary_dir, "dictionary.safetensors"))
    with open(os.path.join(dictionary_dir, "features.json")) as f:
        chosen = chosen_features(json.load(f)["features"], count)
    features = [x["feature"] for x in chosen]
    log.info("feature FVs of block %s: %d features %s, %s", block, len(features), features, settings)
    # none to render when every feature was silent on the held-out images
    result = (
        render_feature_fvs(net, identity, crosscoder, block, o_relu, features, FVSettings(**settings), log_every)
        if features
        else None
    )
    tmp = partial_dir(out_dir)
    blocks, prep = model_blocks(net), for_arch(identity.arch)
    boxes = write_exemplar_grids(
        tmp, chosen, dataset, prep, lambda cell: patch_box(net, blocks, block, o_relu, cell, prep.crop_size)
    )
    record = {
        "block": block,
        "objective": "encoder pre-activation at the centre cell",
        "settings": result.settings if result else settings,
        "weights": identity.as_dict(),
        "features": [],
    }
    if result is not None:
        for f, arr in zip(result.channels, result.png_arrays()):
            Image.fromarray(arr).save(os.path.join(tmp, feature_png_name(f)))
        record["features"] = [
            {
                "feature": f,
                "status": s,
                "first": _num(c[0]),
                "final": _num(c[-1]),
                "patch_boxes": boxes[f],
                "writes_most": writes_most(crosscoder, f, page_channels),
            }
            for f, s, c in zip(result.channels, result.status, result.curve)
        ]
    with open(os.path.join(tmp, "pictures.json"), "w") as fh:
        json.dump(record, fh, indent=1)
    publish_dir(
        tmp,
        out_dir,
        FVError(f"{out_dir} already holds feature FVs; delete it (or let snakemake rerun the job) to recompute"),
    )
    return out_dir


def _num(x) -> float | None:
    return float(x) if np.isfinite(x) else None


def dictionary_pictures_job(job, gpus: int | None = None) -> str:
    """Entry point of a ``dictionary_pictures`` job (its spec: :mod:`resstream.dictionary.jobs`)."""
    params = job.params
    return feature_pictures_folder(
        job.output.folder,
        model=params.model,
        dictionary_dir=job.input.folder,
        dataset=params.dataset,
        block=job.wildcards.block,
        o_relu=params.o_relu,
        count=params.features,
        page_channels=params.page_channels,
        settings=params.settings,
        device=params.device,
        gpus=gpus,
        log_every=job.resources.log_every,
    )
