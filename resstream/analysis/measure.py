"""Centre activations of a block's I, B and O to its FVs (docs/method.md#measurements) and to top-9 images (docs/method.md#imagenet-variant-a3).

FV stimuli are the saved 8-bit PNGs, reloaded exactly as the author did (PIL -> ToTensor ->
Normalize, no resize), so a user can re-measure what they see.  Each stimulus image goes through
ONE truncated forward that taps I, B and O together (:func:`resstream.model.taps.block_taps`, copying
taps); channel c's value is read from the row of its own stimulus.  The scale transforms (docs/method.md#scale-invariance) act
on the *normalised* tensor, batched over channels:

* ``S    = Resize(224) o CenterCrop(112)``       (bilinear, ``antialias=False`` like torchvision 0.15)
* ``S^-1 = Pad(56, reflect) o Resize(112)``      (same)

The FV variant and the forwards both variants share are here; what reads the dataset activations
(the top-9 variant, the branch weights and rho): :mod:`resstream.analysis.measure_dataset`.  The
outputs are raw measurement tables (one row per channel); :func:`resstream.analysis.metrics.metric_table`
derives M, m, n, SM and the pass flags from them.  This module imports none of the metric code, so
a change in how the metrics are derived never reruns a measurement.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torchvision import transforms

from resstream.analysis.stats import relu_mean
from resstream.base.paths import chunk_unit_pngs
from resstream.base.tables import AnalysisError
from resstream.data.dataset import normalize_transform
from resstream.fv.fv_file import fv_file_path, read_fv_file
from resstream.fv.png_files import check_fv_png
from resstream.model import blocks as blk
from resstream.model.adapters import branch_weights
from resstream.model.preprocessing import TORCHVISION, Preprocessing, for_arch
from resstream.model.taps import block_taps, center_activation

log = logging.getLogger(__name__)

ROLES = ("I", "B", "O")

# S and S^-1 (docs/method.md#scale-invariance); antialias pinned off (torchvision >= 0.17 defaults to True, the author's 0.15 did not).
SCALE_UP = transforms.Compose([transforms.CenterCrop(112), transforms.Resize(224, antialias=False)])
SCALE_DOWN = transforms.Compose([transforms.Resize(112, antialias=False), transforms.Pad(56, padding_mode="reflect")])


def scale_up(x: torch.Tensor) -> torch.Tensor:
    """S(X): centre-crop to 112 px, resize back to 224 (the input FV seen larger)."""
    return SCALE_UP(x)


def scale_down(x: torch.Tensor) -> torch.Tensor:
    """S^-1(X): resize to 112 px, reflect-pad back to 224 (the block FV seen smaller)."""
    return SCALE_DOWN(x)


def load_fv_png(path: str, preprocessing: Preprocessing = TORCHVISION) -> torch.Tensor:
    """A saved FV as the model sees it: ``[3, H, W]``, PIL -> ToTensor -> Normalize with the
    model's mean and std (those the FV was optimised with), no resize.
    A file that is not the FV stage's 224x224 RGB PNG is refused, naming it and the fix."""
    check_fv_png(path)
    with Image.open(path) as img:
        return normalize_transform(preprocessing)(transforms.functional.to_tensor(img.convert("RGB")))


# --- forward passes -----------------------------------------------------------------------------------


def block_role_taps(blocks: list[blk.BlockInfo], block: str, o_relu: str) -> dict[str, blk.TapRef]:
    return {role: blk.role_tap(blocks, block, role, o_relu) for role in ROLES}


def o_relu_taps(blocks: list[blk.BlockInfo], block: str) -> dict[str, blk.TapRef]:
    """O and I read both ways, ``{"O_pre", "O_post", "I_pre", "I_post"}``: A.3 averages O over nine
    images, where pre-ReLU sums can be negative, so its M depends on ``o_relu`` (docs/method.md#the-paper-and-the-authors-code)."""
    return {
        f"{role}_{variant}": blk.role_tap(blocks, block, role, variant)
        for role in ("O", "I")
        for variant in blk.O_RELU_CHOICES
    }


def role_layers(blocks: list[blk.BlockInfo], block: str, o_relu: str) -> dict[str, str]:
    """``{"I": layer, "B": layer, "O": layer}`` names of one block's three tensors."""
    return {role: blk.layer_name(blocks, ref) for role, ref in block_role_taps(blocks, block, o_relu).items()}


@torch.no_grad()
def center_responses(
    model, images: torch.Tensor, taps: dict[str, blk.TapRef], blocks, device=None
) -> dict[str, np.ndarray]:
    """One tapped forward of a batch: ``{role: [N, C]}`` centre activations (float64 numpy)."""
    device = device or torch.device("cpu")
    out = block_taps(model, images.to(device), list(taps.values()), blocks=blocks)
    return {role: center_activation(out[ref]).double().cpu().numpy() for role, ref in taps.items()}


def batched_responses(model, images: list[torch.Tensor], taps, blocks, batch_size: int, device=None, transform=None):
    """:func:`center_responses` over a list of images, ``batch_size`` at a time."""
    chunks: dict[str, list[np.ndarray]] = {role: [] for role in taps}
    for start in range(0, len(images), batch_size):
        x = torch.stack(images[start : start + batch_size])
        if transform is not None:
            x = transform(x)
        for role, v in center_responses(model, x, taps, blocks, device).items():
            chunks[role].append(v)
    if not images:
        raise ValueError("no stimuli to measure: the block has no selected channels")
    return {role: np.concatenate(v) for role, v in chunks.items()}


def pick(values: np.ndarray, channels) -> np.ndarray:
    """Row k holds the responses to channel k's own stimulus: take ``values[k, channels[k]]``."""
    channels = np.asarray(channels, dtype=np.int64)
    return values[np.arange(len(channels)), channels]


# --- weights (Fig 3) ------------------------------------------------------------------------------------


def weight_magnitudes(model, info: blk.BlockInfo, channels) -> tuple[np.ndarray, np.ndarray]:
    """``(|gamma_c| of the branch's last per-channel scale, mean |W_c| of the layer before it over
    C_in x k x k)`` (docs/method.md#weights-fig-3): the last BN and its conv; ConvNeXt's layer_scale and last Linear."""
    scale, weight = branch_weights(model.get_submodule(info.module))
    idx = torch.as_tensor(list(channels), dtype=torch.long)
    gamma = scale.detach()[idx].abs().double().numpy()
    w = weight.detach()[idx].abs().flatten(1).mean(1).double().numpy()
    return gamma, w


# --- provenance checks ----------------------------------------------------------------------------------


def check_same_weights(recorded: dict | None, identity, where: str) -> None:
    """Refuse to mix outputs of different networks: the digest in a file must be the model's."""
    if recorded is None:
        log.warning("%s records no weights identity; cannot check it matches %s", where, identity.label)
        return
    if recorded.get("state_dict_sha256") != identity.state_dict_sha256:
        raise AnalysisError(
            f"{where} was made with weights '{recorded.get('label', recorded.get('source'))}' "
            f"(sha256 {str(recorded.get('state_dict_sha256'))[:12]}) but the analysis uses '{identity.label}'. "
            f"Fix: rerun that stage with the current model.weights (delete the file), or set model.weights back."
        )


# --- FV stimuli -------------------------------------------------------------------------------------------


def fv_png_and_status(fv_dirs, layer: str, channels, identity=None) -> dict[int, tuple[str, str]]:
    """``{channel: (png path, FV status)}`` for the requested channels of one FV layer, from the
    chunk folders ``fv_dirs`` (the measurement job's inputs; folders of other layers are ignored).

    The status comes from the chunk's ``fv.h5`` ('ok' | 'dead' | 'nan'); a channel missing from it,
    or whose PNG is missing, gets status 'missing' (measured as NaN, never a crash).
    """
    wanted = set(int(c) for c in channels)
    pngs = chunk_unit_pngs(d for d in fv_dirs if _chunk_layer(d) == layer)
    status: dict[int, str] = {}
    for d in fv_dirs:
        if _chunk_layer(d) == layer:
            status.update(_chunk_status(d, identity))
    out = {}
    for c in wanted:
        png = pngs.get((layer, c), "")
        out[c] = (png, status.get(c, "missing") if png else "missing")
    return out


def _chunk_layer(chunk_dir: str) -> str:
    return os.path.basename(os.path.dirname(os.path.normpath(chunk_dir)))


def _chunk_status(chunk_dir: str, identity) -> dict[int, str]:
    if not os.path.exists(fv_file_path(chunk_dir)):
        log.warning("FV file %s is missing: its channels are measured as missing", fv_file_path(chunk_dir))
        return {}
    record = read_fv_file(chunk_dir)
    if identity is not None:
        check_same_weights(record.weights, identity, record.path)
    return record.status_by_channel()


def settings_by_role(fv_dirs, layers: dict[str, str]) -> dict[str, dict]:
    """``{role: settings}`` the FVs of each role's layer were made with (as the ``fv.h5`` of its
    first chunk folder among ``fv_dirs`` records them)."""
    used = {}
    for role, layer in layers.items():
        for d in fv_dirs:
            if _chunk_layer(d) == layer and os.path.exists(fv_file_path(d)):
                settings = read_fv_file(d).settings
                if settings is not None:
                    used[role] = settings
                break
    return used


def _load_or_nan(path: str, status: str, preprocessing: Preprocessing) -> torch.Tensor:
    if status == "missing" or not path:
        return torch.full((3, 224, 224), float("nan"))
    return load_fv_png(path, preprocessing)


def measure_fv_block(
    model,
    identity,
    blocks: list[blk.BlockInfo],
    block: str,
    channels: list[int],
    o_relu: str,
    fv_dirs,
    batch_size: int,
    device=None,
) -> tuple[pd.DataFrame, dict]:
    """The raw FV table of one block: every quantity of docs/method.md#measurements and #scale-invariance per channel, from the FV chunk
    folders ``fv_dirs`` of its I, B and O layers."""
    taps = block_role_taps(blocks, block, o_relu)
    layers = role_layers(blocks, block, o_relu)
    units = {role: fv_png_and_status(fv_dirs, layers[role], channels, identity) for role in ROLES}

    prep = for_arch(identity.arch)
    x_in = [_load_or_nan(*units["I"][c], prep) for c in channels]  # X_I of every channel
    x_mid = [_load_or_nan(*units["B"][c], prep) for c in channels]  # X_B of every channel
    log.info("block %s: %d channels, I=%s B=%s O=%s", block, len(channels), layers["I"], layers["B"], layers["O"])
    df = fv_raw_rows(model, blocks, taps, block, channels, x_in, x_mid, batch_size, device)
    for role in ROLES:
        df[f"fv_status_{role}"] = [units[role][c][1] for c in channels]
    df["stimulus_status"] = "ok"
    meta = table_meta(identity, blocks, block, layers, o_relu, "fv")
    used = settings_by_role(fv_dirs, layers)
    meta["fv_hook"] = next((u.get("hook") for u in used.values()), None)
    meta["fv_settings"] = used
    return df, meta


def fv_raw_rows(
    model, blocks, taps: dict[str, blk.TapRef], block: str, channels, x_in, x_mid, batch_size: int, device=None
) -> pd.DataFrame:
    """Raw table rows of ``channels`` from their stimuli: ``x_in[k]`` = X_I and ``x_mid[k]`` = X_B of
    channel k (normalised ``[3, H, W]`` tensors, :func:`load_fv_png`)."""
    # One forward per stimulus image, I, B and O tapped together.  X_O is never used (docs/method.md#measurements).
    r_in = batched_responses(model, x_in, taps, blocks, batch_size, device)
    r_mid = batched_responses(model, x_mid, taps, blocks, batch_size, device)
    r_sin = batched_responses(model, x_in, {"B": taps["B"]}, blocks, batch_size, device, transform=scale_up)
    r_smid = batched_responses(model, x_mid, {"I": taps["I"]}, blocks, batch_size, device, transform=scale_down)
    ch = np.asarray(channels)
    df = pd.DataFrame({"block": block, "channel": ch, "stimulus": "fv"})
    return df.assign(
        **raw_quantities(
            out_in=pick(r_in["O"], ch),
            out_mid=pick(r_mid["O"], ch),
            in_in=pick(r_in["I"], ch),
            mid_mid=pick(r_mid["B"], ch),
            in_mid=pick(r_in["B"], ch),
            i_of_xb=pick(r_mid["I"], ch),
            b_of_sxi=pick(r_sin["B"], ch),
            i_of_sinvxb=pick(r_smid["I"], ch),
        )
    )


def raw_quantities(out_in, out_mid, in_in, mid_mid, in_mid, i_of_xb, b_of_sxi, i_of_sinvxb) -> dict:
    """Raw table columns from per-channel ``[C]`` or per-stimulus ``[C, K]`` readings (K averaged)."""

    def mean(x):
        x = np.asarray(x, dtype=np.float64)
        return nanmean_valid(x) if x.ndim == 2 else x

    return {
        "out_in": mean(out_in),
        "out_mid": mean(out_mid),
        "in_in": mean(in_in),
        "mid_mid": mean(mid_mid),
        "in_mid": mean(in_mid),
        "I_of_xB": mean(i_of_xb),
        "B_of_SxI": mean(b_of_sxi),
        "I_of_SinvxB": mean(i_of_sinvxb),
        "relu_B_of_xI": relu_mean(in_mid),
        "relu_B_of_SxI": relu_mean(b_of_sxi),
        "relu_I_of_xB": relu_mean(i_of_xb),
        "relu_I_of_SinvxB": relu_mean(i_of_sinvxb),
    }


def nanmean_valid(x: np.ndarray) -> np.ndarray:
    """Mean over the stimuli that could be read (an all-NaN row stays NaN, without a warning)."""
    n = np.isfinite(x).sum(axis=-1)
    total = np.where(np.isfinite(x), x, 0.0).sum(axis=-1)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def table_meta(identity, blocks, block: str, layers: dict, o_relu: str, stimulus: str) -> dict:
    return {
        "weights": identity.as_dict(),
        "block": block,
        "block_type": blk.block_lookup(blocks, block).skip_path,
        "stimulus": stimulus,
        "layers": layers,
        "o_relu": o_relu,
        "scale_transforms": "S = Resize(224, bilinear, antialias=False) o CenterCrop(112); "
        "S^-1 = Pad(56, reflect) o Resize(112, bilinear, antialias=False); on normalised tensors",
    }
