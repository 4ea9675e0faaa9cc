"""What a block's measurement reads from the dataset activations (docs/method.md#weights-fig-3, docs/method.md#imagenet-variant-a3 A.3): the branch
weights and the Spearman rho of B against I over the dataset images (Figs 3, 4), and the ImageNet
variant of the raw table, each channel measured on its own top-9 images instead of its FVs.  The FV
variant and the shared forwards: :mod:`resstream.analysis.measure`; the file: :mod:`resstream.activations.store`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from resstream.activations import store
from resstream.analysis.measure import (
    ROLES,
    block_role_taps,
    center_responses,
    check_same_weights,
    nanmean_valid,
    o_relu_taps,
    raw_quantities,
    role_layers,
    scale_down,
    scale_up,
    table_meta,
    weight_magnitudes,
)
from resstream.analysis.stats import spearman_where_input_positive
from resstream.base.tables import AnalysisError, weights_attr
from resstream.data.dataset import ImageFolderDataset, ImageRecord
from resstream.data.image_manifest import manifest_folder
from resstream.model import blocks as blk
from resstream.model.preprocessing import TORCHVISION, Preprocessing, for_arch

log = logging.getLogger(__name__)


def add_weights_and_rho(
    df: pd.DataFrame,
    model,
    blocks: list[blk.BlockInfo],
    block: str,
    o_relu: str,
    activations_path: str,
    identity,
    dataset_columns=None,
) -> pd.DataFrame:
    """Columns ``bn_gamma_abs``, ``conv_w_abs_mean`` and the Spearman rho of B against I over the
    dataset images with I > 0 (``rho_BI``, ``rho_BI_p``, ``rho_n``, ``rho_status``).
    ``dataset_columns``: ``(I [N, C], B [N, C], ok [N])`` of ``df``'s channels, already read from the
    activations file (the ImageNet measurement's :func:`read_top_images`); else read here."""
    info = blk.block_lookup(blocks, block)
    channels = df["channel"].to_numpy()
    df = df.copy()
    df["bn_gamma_abs"], df["conv_w_abs_mean"] = weight_magnitudes(model, info, channels)
    if dataset_columns is None:
        layers = role_layers(blocks, block, o_relu)
        with _open_checked(activations_path, identity) as f:
            dataset_columns = (
                _layer_columns(f, layers["I"], channels, activations_path),
                _layer_columns(f, layers["B"], channels, activations_path),
                store.image_ok(f),
            )
    i_curve, b_curve, ok = dataset_columns
    rho, p, n, status = spearman_where_input_positive(i_curve[ok], b_curve[ok])
    df["rho_BI"], df["rho_BI_p"], df["rho_n"], df["rho_status"] = rho, p, n, status
    return df


def _open_checked(path: str, identity):
    """The complete activations file, once it is known to come from the model being measured."""
    if not os.path.exists(path):
        raise AnalysisError(
            f"dataset activations {path} do not exist. Fix: run the activations stage first (snakemake {path})."
        )
    f = store.open_activations(path)
    try:
        check_same_weights(weights_attr(f.attrs, path), identity, path)
    except BaseException:
        f.close()
        raise
    return f


def _layer_columns(f, layer: str, channels, where: str) -> np.ndarray:
    if not store.has_layer(f, layer):
        raise AnalysisError(
            f"{where} has no /layers/{layer}. Fix: rerun the activations stage with this study's config (o_relu and blocks decide its layers)."
        )
    return store.layer_columns(f, layer, channels).astype(np.float64)


# --- ImageNet variant (A.3) --------------------------------------------------------------------------------


@dataclass
class _TopImages:
    """What the A.3 measurement of one block reads from the activations file."""

    dataset_root: str
    top: dict[str, np.ndarray]  # role I | B -> [C, k] image rows of each channel's top-k (-1: none)
    paths: np.ndarray  # [N] image paths relative to dataset_root
    ok: np.ndarray  # [N] bool, False for images the pass skipped
    stored: dict[str, np.ndarray]  # role -> [N, C] stored centre activations of the selected channels
    image_root: str | None = None  # the folder the job opens the images from (its manifest's), else dataset_root

    def rho_columns(self):
        """What :func:`add_weights_and_rho` reads: ``(I, B, ok)`` (None where the file lacks a layer:
        reading it again there gives the refusal that names it)."""
        if "I" not in self.stored or "B" not in self.stored:
            return None
        return self.stored["I"], self.stored["B"], self.ok


@dataclass
class _Responses:
    """Centre responses ``{role: {image row: [C_layer]}}`` of the plain, S and S^-1 forwards."""

    plain: dict = field(default_factory=dict)
    up: dict = field(default_factory=dict)
    down: dict = field(default_factory=dict)
    readable: dict = field(default_factory=dict)  # image row -> could be read (and the pass read it)

    def gather(self, table: str, role: str, role_top: np.ndarray, channels) -> np.ndarray:
        """``[C, k]``: channel c's own response to each of its k images.  The stored response rows
        are full-width (every channel of the layer), so they are indexed by the channel's id, not
        by its position in the selection."""
        responses = getattr(self, table)[role]
        return np.stack(
            [[responses[i][c] if self.readable.get(i) else np.nan for i in row] for row, c in zip(role_top, channels)]
        )


def measure_imagenet_block(
    model,
    identity,
    blocks: list[blk.BlockInfo],
    block: str,
    channels: list[int],
    o_relu: str,
    activations_path: str,
    batch_size: int,
    device=None,
    top_images: _TopImages | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The raw ImageNet table of one block: as :func:`measure_fv_block` with each channel's top-9
    dataset images of its I and of its B layer in place of X_I and X_B; every value is the mean
    over the 9 images, the ReLU'd deltas means of ReLU (docs/method.md#imagenet-variant-a3).  The images are read from the
    folder the activations file was made from (its ``dataset_root_resolved``).  ``top_images``: what
    :func:`read_top_images` read of that file for this block, else read here."""
    channels = np.asarray(channels)
    taps = block_role_taps(blocks, block, o_relu)
    layers = role_layers(blocks, block, o_relu)
    if top_images is None:
        top_images = read_top_images(activations_path, identity, blocks, block, o_relu, channels)
    # index -1 pads a unit with fewer than k valid images; such slots are left out of the means
    need_up = set(top_images.top["I"].ravel().tolist()) - {-1}
    need_down = set(top_images.top["B"].ravel().tolist()) - {-1}
    indices = sorted(need_up | need_down)
    log.info(
        "block %s: %d channels, %d distinct top-9 images (I=%s, B=%s)",
        block,
        len(channels),
        len(indices),
        layers["I"],
        layers["B"],
    )
    plain_taps = dict(taps, **o_relu_taps(blocks, block))
    responses = _top_image_responses(
        model, blocks, top_images, indices, need_up, need_down, plain_taps, batch_size, device, for_arch(identity.arch)
    )
    df = _imagenet_rows(block, channels, top_images.top, responses)
    meta = table_meta(identity, blocks, block, layers, o_relu, "imagenet")
    meta["dataset"] = top_images.dataset_root
    meta["max_abs_diff_vs_activations_h5"] = _stored_difference(top_images.stored, responses, indices, channels)
    log.info(
        "block %s: largest difference to the stored dataset activations %.3g",
        block,
        meta["max_abs_diff_vs_activations_h5"] or 0.0,
    )
    return df, meta


def read_top_images(
    path: str, identity, blocks: list[blk.BlockInfo], block: str, o_relu: str, channels, images: str | None = None
) -> _TopImages:
    """What the ImageNet measurement of ``block`` reads of the activations file (checked to come
    from ``identity``): the top-k image rows of I and B, the image list and the stored columns.
    ``images``: the dataset's image manifest, which must list the file's images; they are opened
    from its folder."""
    layers = role_layers(blocks, block, o_relu)
    channels = np.asarray(channels)
    with _open_checked(path, identity) as f:
        top = {}
        for role in ("I", "B"):
            if not store.has_topk(f, layers[role]):
                raise AnalysisError(
                    f"{path} has no /topk/{layers[role]}/index. Fix: rerun the activations stage with this study's config."
                )
            top[role] = store.topk_index(f, layers[role])[channels].astype(np.int64)  # [C, k]
        stored = {
            role: store.layer_columns(f, layers[role], channels) for role in ROLES if store.has_layer(f, layers[role])
        }
        top_images = _TopImages(store.dataset_root(f), top, store.image_paths(f), store.image_ok(f), stored)
    if images:
        top_images.image_root = manifest_folder(images, top_images.paths, path)
    return top_images


def _top_image_responses(
    model,
    blocks,
    top_images: _TopImages,
    indices: list[int],
    need_up: set,
    need_down: set,
    plain_taps: dict[str, blk.TapRef],
    batch_size: int,
    device,
    preprocessing: Preprocessing = TORCHVISION,
) -> _Responses:
    """Each image is loaded once and sent through at most three forwards: plain (every tap of
    ``plain_taps``), S (if it is some channel's I exemplar) and S^-1 (if it is some channel's B
    exemplar); the images are read as the dataset pass read them (``preprocessing``)."""
    records = [ImageRecord(i, str(p), -1, "") for i, p in enumerate(top_images.paths)]
    dataset = ImageFolderDataset(
        top_images.image_root or top_images.dataset_root,
        on_bad_image="skip",
        records=records,
        preprocessing=preprocessing,
    )
    out = _Responses()
    for start in range(0, len(indices), batch_size):
        batch = indices[start : start + batch_size]
        items = [dataset[i] for i in batch]
        x = torch.stack([it[0] for it in items])
        for i, it in zip(batch, items):
            out.readable[i] = bool(it[2]) and bool(top_images.ok[i])
        _store(out.plain, batch, center_responses(model, x, plain_taps, blocks, device))
        sel = [k for k, i in enumerate(batch) if i in need_up]
        if sel:
            _store(
                out.up,
                [batch[k] for k in sel],
                center_responses(model, scale_up(x[sel]), {"B": plain_taps["B"]}, blocks, device),
            )
        sel = [k for k, i in enumerate(batch) if i in need_down]
        if sel:
            _store(
                out.down,
                [batch[k] for k in sel],
                center_responses(model, scale_down(x[sel]), {"I": plain_taps["I"]}, blocks, device),
            )
    return out


def _imagenet_rows(block: str, channels: np.ndarray, top: dict[str, np.ndarray], r: _Responses) -> pd.DataFrame:
    """The raw table rows: every quantity averaged over each channel's top images."""
    v_in, v_mid = top["I"], top["B"]

    def gather(table, role, role_top):
        return r.gather(table, role, role_top, channels)

    df = pd.DataFrame({"block": block, "channel": channels, "stimulus": "imagenet"})
    df = df.assign(
        **raw_quantities(
            out_in=gather("plain", "O", v_in),
            out_mid=gather("plain", "O", v_mid),
            in_in=gather("plain", "I", v_in),
            mid_mid=gather("plain", "B", v_mid),
            in_mid=gather("plain", "B", v_in),
            i_of_xb=gather("plain", "I", v_mid),
            b_of_sxi=gather("up", "B", v_in),
            i_of_sinvxb=gather("down", "I", v_mid),
        )
    )
    for variant in blk.O_RELU_CHOICES:  # both readings of O and I over the same images (the scorecard's A.3 rows)
        df[f"out_in_{variant}"] = nanmean_valid(gather("plain", f"O_{variant}", v_in))
        df[f"out_mid_{variant}"] = nanmean_valid(gather("plain", f"O_{variant}", v_mid))
        df[f"in_in_{variant}"] = nanmean_valid(gather("plain", f"I_{variant}", v_in))
    bad = [sum(not r.readable.get(i) for i in set(v_in[k]) | set(v_mid[k])) for k in range(len(channels))]
    df["stimulus_status"] = ["ok" if b == 0 else f"imagenet:{b}_images_missing_or_unreadable" for b in bad]
    df["top9_I"] = [" ".join(map(str, row)) for row in v_in]
    df["top9_B"] = [" ".join(map(str, row)) for row in v_mid]
    return df


def _stored_difference(stored: dict[str, np.ndarray], r: _Responses, indices: list[int], channels) -> float | None:
    """The plain forwards repeat what the activations stage stored: their agreement checks that the
    two stages saw the same images through the same network (largest absolute difference)."""
    diffs = []
    for role, arr in stored.items():
        for i in indices:
            if r.readable[i]:
                diffs.append(np.nanmax(np.abs(r.plain[role][i][channels] - arr[i].astype(np.float64))))
    return float(max(diffs)) if diffs else None


def _store(table: dict, indices, responses: dict[str, np.ndarray]):
    for role, values in responses.items():
        dest = table.setdefault(role, {})
        for i, row in zip(indices, values):
            dest[i] = row
