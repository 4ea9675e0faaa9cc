"""Centre activations of a block's I, B and O to its FVs (spec §3, §7) and to top-9 images (§8 A.3).

FV stimuli are the saved 8-bit PNGs, reloaded exactly as the author did (PIL -> ToTensor ->
Normalize, no resize), so a user can re-measure what they see.  Each stimulus image goes through
ONE truncated forward that taps I, B and O together (:func:`resstream.model.taps.block_taps`, copying
taps); channel c's value is read from the row of its own stimulus.  The scale transforms of §7 act
on the *normalised* tensor, batched over channels:

* ``S    = Resize(224) o CenterCrop(112)``       (bilinear, ``antialias=False`` like torchvision 0.15)
* ``S^-1 = Pad(56, reflect) o Resize(112)``      (same)

The outputs are raw measurement tables (one row per channel); :func:`resstream.analysis.metrics.metric_table`
derives M, m, n, SM and the pass flags from them.  This module imports none of the metric code, so
a change in how the metrics are derived never reruns a measurement.
"""

from __future__ import annotations

import json
import logging
import os

import h5py
import numpy as np
import pandas as pd
import torch
from PIL import Image
from torchvision import transforms

from resstream.model import blocks as blk
from resstream.data.dataset import ImageFolderDataset, ImageRecord, normalize_transform
from resstream.analysis.stats import relu_mean, spearman_where_input_positive
from resstream.workflow.paths import chunk_unit_pngs
from resstream.analysis.tables import AnalysisError
from resstream.model.families import branch_weights
from resstream.model.taps import block_taps, center_activation
from resstream.fv.png_files import check_fv_png

log = logging.getLogger(__name__)

ROLES = ("I", "B", "O")

# Spec §7; antialias pinned off (torchvision >= 0.17 defaults to True, the author's 0.15 did not).
SCALE_UP = transforms.Compose([transforms.CenterCrop(112), transforms.Resize(224, antialias=False)])
SCALE_DOWN = transforms.Compose([transforms.Resize(112, antialias=False), transforms.Pad(56, padding_mode="reflect")])


def scale_up(x: torch.Tensor) -> torch.Tensor:
    """S(X): centre-crop to 112 px, resize back to 224 (the input FV seen larger)."""
    return SCALE_UP(x)


def scale_down(x: torch.Tensor) -> torch.Tensor:
    """S^-1(X): resize to 112 px, reflect-pad back to 224 (the block FV seen smaller)."""
    return SCALE_DOWN(x)


FV_TRANSFORM = transforms.Compose([transforms.ToTensor(), normalize_transform()])


def load_fv_png(path: str) -> torch.Tensor:
    """A saved FV as the model sees it: ``[3, H, W]``, PIL -> ToTensor -> Normalize, no resize.
    A file that is not the FV stage's 224x224 RGB PNG is refused, naming it and the fix."""
    check_fv_png(path)
    with Image.open(path) as img:
        return FV_TRANSFORM(img.convert("RGB"))


# --- forward passes -----------------------------------------------------------------------------------


def block_role_taps(blocks: list[blk.BlockInfo], block: str, o_relu: str) -> dict[str, blk.TapRef]:
    return {role: blk.role_tap(blocks, block, role, o_relu) for role in ROLES}


def o_relu_taps(blocks: list[blk.BlockInfo], block: str) -> dict[str, blk.TapRef]:
    """O and I read both ways, ``{"O_pre", "O_post", "I_pre", "I_post"}``: A.3 averages O over nine
    images, where pre-ReLU sums can be negative, so its M depends on ``o_relu`` (spec §13)."""
    return {f"{role}_{variant}": blk.role_tap(blocks, block, role, variant) for role in ("O", "I") for variant in blk.O_RELU_CHOICES}


def role_layers(blocks: list[blk.BlockInfo], block: str, o_relu: str) -> dict[str, str]:
    """``{"I": layer, "B": layer, "O": layer}`` names of one block's three tensors."""
    return {role: blk.layer_name(blocks, ref) for role, ref in block_role_taps(blocks, block, o_relu).items()}


@torch.no_grad()
def center_responses(model, images: torch.Tensor, taps: dict[str, blk.TapRef], blocks, device=None) -> dict[str, np.ndarray]:
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
    C_in x k x k)`` (spec §5): the last BN and its conv; ConvNeXt's layer_scale and last Linear."""
    scale, weight = branch_weights(model.get_submodule(info.module))
    idx = torch.as_tensor(list(channels), dtype=torch.long)
    gamma = scale.detach()[idx].abs().double().numpy()
    w = weight.detach()[idx].abs().flatten(1).mean(1).double().numpy()
    return gamma, w


# --- provenance checks ----------------------------------------------------------------------------------


def weights_attr(attrs, where: str) -> dict | None:
    raw = attrs.get("weights")
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        raise AnalysisError(f"{where}: attribute 'weights' is not JSON. Fix: rerun the stage that wrote it.") from None


def check_same_weights(found: dict | None, identity, where: str) -> None:
    """Refuse to mix outputs of different networks: the digest in a file must be the model's."""
    if found is None:
        log.warning("%s records no weights identity; cannot check it matches %s", where, identity.label)
        return
    if found.get("state_dict_sha256") != identity.state_dict_sha256:
        raise AnalysisError(
            f"{where} was made with weights '{found.get('label', found.get('source'))}' "
            f"(sha256 {str(found.get('state_dict_sha256'))[:12]}) but the analysis uses '{identity.label}'. "
            f"Fix: rerun that stage with the current model.weights (delete the file), or set model.weights back."
        )


# --- FV stimuli -------------------------------------------------------------------------------------------


def fv_units(fv_dirs, layer: str, channels, identity=None) -> dict[int, tuple[str, str]]:
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
            status.update(_chunk_status(os.path.join(d, "fv.h5"), identity))
    out = {}
    for c in wanted:
        png = pngs.get((layer, c), "")
        out[c] = (png, status.get(c, "missing") if png else "missing")
    return out


def _chunk_layer(chunk_dir: str) -> str:
    return os.path.basename(os.path.dirname(os.path.normpath(chunk_dir)))


def _chunk_status(h5_path: str, identity) -> dict[int, str]:
    if not os.path.exists(h5_path):
        log.warning("FV file %s is missing: its channels are measured as missing", h5_path)
        return {}
    with h5py.File(h5_path, "r") as f:
        if identity is not None:
            check_same_weights(weights_attr(f.attrs, h5_path), identity, h5_path)
        chans = f["channels"][:]
        stat = f["status"].asstr()[:] if f["status"].dtype.kind in "OS" else f["status"][:]
        return {int(c): str(s) for c, s in zip(chans, stat)}


def fv_settings_used(fv_dirs, layers: dict[str, str]) -> dict[str, dict]:
    """``{role: settings}`` the FVs of each role's layer were made with (the ``fv.h5`` attribute
    ``settings`` of its first chunk folder among ``fv_dirs``)."""
    used = {}
    for role, layer in layers.items():
        for d in fv_dirs:
            h5_path = os.path.join(d, "fv.h5")
            if _chunk_layer(d) == layer and os.path.exists(h5_path):
                with h5py.File(h5_path, "r") as f:
                    settings = f.attrs.get("settings")
                if settings is not None:
                    used[role] = json.loads(settings)
                break
    return used


def _load_or_nan(path: str, status: str) -> torch.Tensor:
    if status == "missing" or not path:
        return torch.full((3, 224, 224), float("nan"))
    return load_fv_png(path)


def measure_fv_block(model, identity, blocks: list[blk.BlockInfo], block: str, channels: list[int], o_relu: str,
                     fv_dirs, batch_size: int = 32, device=None) -> tuple[pd.DataFrame, dict]:
    """The raw FV table of one block: every spec §3/§7 quantity per channel, from the FV chunk
    folders ``fv_dirs`` of its I, B and O layers."""
    taps = block_role_taps(blocks, block, o_relu)
    layers = role_layers(blocks, block, o_relu)
    units = {role: fv_units(fv_dirs, layers[role], channels, identity) for role in ROLES}

    x_in = [_load_or_nan(*units["I"][c]) for c in channels]  # X_I of every channel
    x_mid = [_load_or_nan(*units["B"][c]) for c in channels]  # X_B of every channel
    log.info("block %s: %d channels, I=%s B=%s O=%s", block, len(channels), layers["I"], layers["B"], layers["O"])
    df = fv_raw_rows(model, blocks, taps, block, channels, x_in, x_mid, batch_size, device)
    for role in ROLES:
        df[f"fv_status_{role}"] = [units[role][c][1] for c in channels]
    df["stimulus_status"] = "ok"
    meta = _meta(identity, blocks, block, layers, o_relu, "fv")
    used = fv_settings_used(fv_dirs, layers)
    meta["fv_hook"] = next((u.get("hook") for u in used.values()), None)
    meta["fv_settings"] = used
    return df, meta


def fv_raw_rows(model, blocks, taps: dict[str, blk.TapRef], block: str, channels, x_in, x_mid, batch_size: int = 32,
                device=None) -> pd.DataFrame:
    """Raw table rows of ``channels`` from their stimuli: ``x_in[k]`` = X_I and ``x_mid[k]`` = X_B of
    channel k (normalised ``[3, H, W]`` tensors, :func:`load_fv_png`)."""
    # One forward per stimulus image, I, B and O tapped together.  X_O is never used (spec §3).
    r_in = batched_responses(model, x_in, taps, blocks, batch_size, device)
    r_mid = batched_responses(model, x_mid, taps, blocks, batch_size, device)
    r_sin = batched_responses(model, x_in, {"B": taps["B"]}, blocks, batch_size, device, transform=scale_up)
    r_smid = batched_responses(model, x_mid, {"I": taps["I"]}, blocks, batch_size, device, transform=scale_down)
    ch = np.asarray(channels)
    df = pd.DataFrame({"block": block, "channel": ch, "stimulus": "fv"})
    return df.assign(**_quantities(
        out_in=pick(r_in["O"], ch), out_mid=pick(r_mid["O"], ch), in_in=pick(r_in["I"], ch),
        mid_mid=pick(r_mid["B"], ch), in_mid=pick(r_in["B"], ch), i_of_xb=pick(r_mid["I"], ch),
        b_of_sxi=pick(r_sin["B"], ch), i_of_sinvxb=pick(r_smid["I"], ch),
    ))


def _quantities(out_in, out_mid, in_in, mid_mid, in_mid, i_of_xb, b_of_sxi, i_of_sinvxb) -> dict:
    """Raw table columns from per-channel ``[C]`` or per-stimulus ``[C, K]`` readings (K averaged)."""
    def mean(x):
        x = np.asarray(x, dtype=np.float64)
        return _nanmean(x) if x.ndim == 2 else x

    return {
        "out_in": mean(out_in), "out_mid": mean(out_mid), "in_in": mean(in_in), "mid_mid": mean(mid_mid),
        "in_mid": mean(in_mid), "I_of_xB": mean(i_of_xb), "B_of_SxI": mean(b_of_sxi), "I_of_SinvxB": mean(i_of_sinvxb),
        "relu_B_of_xI": relu_mean(in_mid), "relu_B_of_SxI": relu_mean(b_of_sxi),
        "relu_I_of_xB": relu_mean(i_of_xb), "relu_I_of_SinvxB": relu_mean(i_of_sinvxb),
    }


def _nanmean(x: np.ndarray) -> np.ndarray:
    """Mean over the stimuli that could be read (an all-NaN row stays NaN, without a warning)."""
    n = np.isfinite(x).sum(axis=-1)
    total = np.where(np.isfinite(x), x, 0.0).sum(axis=-1)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _meta(identity, blocks, block: str, layers: dict, o_relu: str, stimulus: str) -> dict:
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


# --- dataset-based quantities (Fig 3 weights, Fig 4 rho) -------------------------------------------------


def add_weights_and_rho(df: pd.DataFrame, model, blocks: list[blk.BlockInfo], block: str, o_relu: str,
                        activations_path: str, identity) -> pd.DataFrame:
    """Columns ``bn_gamma_abs``, ``conv_w_abs_mean`` and the Spearman rho of B against I over the
    dataset images with I > 0 (``rho_BI``, ``rho_BI_p``, ``rho_n``, ``rho_status``)."""
    info = blk.block_lookup(blocks, block)
    channels = df["channel"].to_numpy()
    df = df.copy()
    df["bn_gamma_abs"], df["conv_w_abs_mean"] = weight_magnitudes(model, info, channels)
    layers = role_layers(blocks, block, o_relu)
    with h5py.File(_require(activations_path), "r") as f:
        check_same_weights(weights_attr(f.attrs, activations_path), identity, activations_path)
        i_curve = _layer_columns(f, layers["I"], channels, activations_path)
        b_curve = _layer_columns(f, layers["B"], channels, activations_path)
        if "images/ok" in f:
            ok = f["images/ok"][:].astype(bool)
            i_curve, b_curve = i_curve[ok], b_curve[ok]
    rho, p, n, status = spearman_where_input_positive(i_curve, b_curve)
    df["rho_BI"], df["rho_BI_p"], df["rho_n"], df["rho_status"] = rho, p, n, status
    return df


def _require(path: str) -> str:
    if not os.path.exists(path):
        raise AnalysisError(f"dataset activations {path} do not exist. Fix: run the activations stage first (snakemake {path}).")
    return path


def _layer_columns(f, layer: str, channels, where: str) -> np.ndarray:
    key = f"layers/{layer}"
    if key not in f:
        raise AnalysisError(f"{where} has no /{key}. Fix: rerun the activations stage with this study's config (o_relu and blocks decide its layers).")
    return f[key][:, :][:, np.asarray(channels)].astype(np.float64)


# --- ImageNet variant (A.3) --------------------------------------------------------------------------------


def measure_imagenet_block(model, identity, blocks: list[blk.BlockInfo], block: str, channels: list[int], o_relu: str,
                           activations_path: str, batch_size: int = 32, device=None) -> tuple[pd.DataFrame, dict]:
    """The raw ImageNet table of one block: as :func:`measure_fv_block` with each channel's top-9
    dataset images of its I and of its B layer in place of X_I and X_B; every value is the mean
    over the 9 images, the ReLU'd deltas means of ReLU (spec §8).  The images are read from the
    folder the activations file was made from (its ``dataset_root_resolved``)."""
    channels = np.asarray(channels)
    taps = block_role_taps(blocks, block, o_relu)
    layers = role_layers(blocks, block, o_relu)
    with h5py.File(_require(activations_path), "r") as f:
        check_same_weights(weights_attr(f.attrs, activations_path), identity, activations_path)
        dataset_root = str(f.attrs["dataset_root_resolved"])
        top = {}
        for role in ("I", "B"):
            key = f"topk/{layers[role]}/index"
            if key not in f:
                raise AnalysisError(f"{activations_path} has no /{key}. Fix: rerun the activations stage with this study's config.")
            top[role] = f[key][:][channels].astype(np.int64)  # [C, k]
        paths = f["images/path"].asstr()[:]
        img_ok = f["images/ok"][:].astype(bool) if "images/ok" in f else np.ones(len(paths), bool)
        stored = {role: f[f"layers/{layers[role]}"][:, :][:, channels] for role in ROLES if f"layers/{layers[role]}" in f}
    records = [ImageRecord(i, str(p), -1, "") for i, p in enumerate(paths)]
    dataset = ImageFolderDataset(dataset_root, on_bad_image="skip", records=records)

    # index -1 pads a unit with fewer than k valid images; such slots are left out of the means
    need_up = set(top["I"].ravel().tolist()) - {-1}
    need_down = set(top["B"].ravel().tolist()) - {-1}
    indices = sorted(need_up | need_down)
    log.info("block %s: %d channels, %d distinct top-9 images (I=%s, B=%s)", block, len(channels), len(indices), layers["I"], layers["B"])
    plain, up, down, readable = {}, {}, {}, {}
    plain_taps = dict(taps, **o_relu_taps(blocks, block))
    # Each image is loaded once and sent through at most three forwards: plain, S (if it is some
    # channel's I exemplar) and S^-1 (if it is some channel's B exemplar).
    for start in range(0, len(indices), batch_size):
        batch = indices[start : start + batch_size]
        items = [dataset[i] for i in batch]
        x = torch.stack([it[0] for it in items])
        for i, it in zip(batch, items):
            readable[i] = bool(it[2]) and bool(img_ok[i])
        _store(plain, batch, center_responses(model, x, plain_taps, blocks, device))
        sel = [k for k, i in enumerate(batch) if i in need_up]
        if sel:
            _store(up, [batch[k] for k in sel], center_responses(model, scale_up(x[sel]), {"B": taps["B"]}, blocks, device))
        sel = [k for k, i in enumerate(batch) if i in need_down]
        if sel:
            _store(down, [batch[k] for k in sel], center_responses(model, scale_down(x[sel]), {"I": taps["I"]}, blocks, device))

    def gather(table, role, role_top):
        """``[C, k]``: channel c's own response to each of its k images.  The stored response rows
        are full-width (every channel of the layer), so they are indexed by the channel's id, not
        by its position in the selection."""
        return np.stack([[table[role][i][c] if readable.get(i) else np.nan for i in row] for row, c in zip(role_top, channels)])

    v_in, v_mid = top["I"], top["B"]
    df = pd.DataFrame({"block": block, "channel": channels, "stimulus": "imagenet"})
    df = df.assign(**_quantities(
        out_in=gather(plain, "O", v_in), out_mid=gather(plain, "O", v_mid), in_in=gather(plain, "I", v_in),
        mid_mid=gather(plain, "B", v_mid), in_mid=gather(plain, "B", v_in), i_of_xb=gather(plain, "I", v_mid),
        b_of_sxi=gather(up, "B", v_in), i_of_sinvxb=gather(down, "I", v_mid),
    ))
    for variant in blk.O_RELU_CHOICES:  # both readings of O and I over the same images (the scorecard's A.3 rows)
        df[f"out_in_{variant}"] = _nanmean(gather(plain, f"O_{variant}", v_in))
        df[f"out_mid_{variant}"] = _nanmean(gather(plain, f"O_{variant}", v_mid))
        df[f"in_in_{variant}"] = _nanmean(gather(plain, f"I_{variant}", v_in))
    bad = [sum(not readable.get(i) for i in set(v_in[k]) | set(v_mid[k])) for k in range(len(channels))]
    df["stimulus_status"] = ["ok" if b == 0 else f"imagenet:{b}_images_missing_or_unreadable" for b in bad]
    df["top9_I"] = [" ".join(map(str, r)) for r in v_in]
    df["top9_B"] = [" ".join(map(str, r)) for r in v_mid]
    meta = _meta(identity, blocks, block, layers, o_relu, "imagenet")
    meta["dataset"] = dataset_root
    # The plain forwards repeat what the activations stage stored: their agreement checks that the
    # two stages saw the same images through the same network.
    diffs = []
    for role, arr in stored.items():
        for i in indices:
            if readable[i]:
                diffs.append(np.nanmax(np.abs(plain[role][i][channels] - arr[i].astype(np.float64))))
    meta["max_abs_diff_vs_activations_h5"] = float(max(diffs)) if diffs else None
    log.info("block %s: largest difference to the stored dataset activations %.3g", block, meta["max_abs_diff_vs_activations_h5"] or 0.0)
    return df, meta


def _store(table: dict, indices, responses: dict[str, np.ndarray]):
    for role, values in responses.items():
        dest = table.setdefault(role, {})
        for i, row in zip(indices, values):
            dest[i] = row


# --- entry point for the workflow ---------------------------------------------------------------------------


def run_block_measurement(stimulus: str, block: str, channels: list[int], o_relu: str, model: dict, activations_path: str,
                          out_csv: str, *, fv_dirs=(), batch_size: int = 32, device: str = "auto",
                          gpus: int | None = None) -> pd.DataFrame:
    """The measurement job of one block (``stimulus`` fv | imagenet): its raw table with provenance.
    ``fv_dirs``: the FV chunk folders of the block's I, B and O layers (fv only); ``model``: the
    rule's model param (:func:`resstream.model.weights.model_param`); ``batch_size``, ``device`` and
    ``gpus`` (what the job declared, :func:`resstream.model.device.resolve_device`) change how it runs."""
    from resstream.model.device import resolve_device
    from resstream.analysis.tables import write_table
    from resstream.model.weights import load_model_param

    net, identity = load_model_param(model)
    run_on = resolve_device(device, gpus)
    net = net.to(run_on)
    blocks = blk.model_blocks(net)
    log.info("measuring block %s with %s stimuli on %s; weights %s", block, stimulus, run_on, identity.label)
    if stimulus == "fv":
        df, meta = measure_fv_block(net, identity, blocks, block, channels, o_relu, fv_dirs, batch_size, run_on)
    else:
        df, meta = measure_imagenet_block(net, identity, blocks, block, channels, o_relu, activations_path, batch_size, run_on)
    df = add_weights_and_rho(df, net.cpu(), blocks, block, o_relu, activations_path, identity)
    write_table(df, out_csv, meta)
    return df
