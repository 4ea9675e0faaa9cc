"""The ``dictionary`` job of one block: train its crosscoder on streamed tokens of the training
images, then read it on the held-out images, and write ``dictionary.safetensors``, ``quality.json``
and ``features.json`` into the block's folder."""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from resstream.analysis.metrics import mix_group
from resstream.base.errors import ConfigError
from resstream.data.dataset import ImageFolderDataset, scan_image_folder
from resstream.data.image_manifest import read_image_manifest
from resstream.dictionary import science
from resstream.dictionary.stage_scope import stage_readout
from resstream.dictionary.tokens import ImageTokens, block_refs
from resstream.dictionary.train import save_dictionary, train_crosscoder
from resstream.model.device import resolve_device
from resstream.model.walk import model_blocks
from resstream.model.weights import load_model_param

log = logging.getLogger(__name__)
ROLES = ["I", "B", "O"]


def training_config(
    section: dict, dims: dict[str, int], images: int, inputs: list[str] | None = None, targets: list[str] | None = None
) -> dict:
    """The crosscoder's full training config from the ``dictionary:`` config section and the channel
    counts of the tensors it reads and writes (by default a block's: ``section["inputs"]`` of I, B,
    O in, all three out); the number of refills follows from ``tokens``."""
    per_refill = section["images_per_refill"] * section["positions_per_image"]
    inputs, targets = inputs or section["inputs"], targets or ROLES
    return {
        "inputs": inputs,
        "targets": targets,
        "dims": dims,
        "n_latents": section["expansion"] * sum(dims[t] for t in inputs),
        "k": section["k"],
        "aux_k": section["aux_k"],
        "dead_tokens": section["dead_tokens"],
        "seed": section["seed"],
        "lr": section["lr"],
        "aux_coef": section["aux_coef"],
        "batch_size": min(section["batch_size"], per_refill),
        "refills": math.ceil(section["tokens"] / per_refill),
        "checkpoint_every": section["checkpoint_every"],
        "positions_per_image": section["positions_per_image"],
        "images_per_refill": section["images_per_refill"],
        "training_images": images,
    }


@dataclass
class Readout:
    """What one crosscoder reads and writes: ``refs`` ``{tensor name: TapRef}`` (one grid), the
    encoder's ``inputs`` (names), ``mix`` ``{label: (I name, B name)}`` whose decoder norms give a
    feature's M (label None: one block, M written flat), ``outputs`` ``{label: O name}``."""

    refs: dict
    inputs: list[str]
    mix: dict
    outputs: dict


def dictionary_block(
    out_dir: str,
    *,
    model: dict,
    dataset: str,
    on_bad_image: str,
    block: str,
    o_relu: str,
    section: dict,
    device: str,
    gpus: int | None = None,
    images: str | None = None,
) -> str:
    """Train and read block ``block``'s crosscoder; ``section``: the config's ``dictionary:``.  A
    checkpoint beside ``out_dir`` (:func:`checkpoint_path`) lets a killed job resume.  ``images``: the
    dataset's image manifest, whose listing it reads instead of listing the folder."""
    net, identity, blocks, run_on = _network(model, device, gpus)
    readout = Readout(block_refs(blocks, block, ROLES, o_relu), section["inputs"], {None: ("I", "B")}, {None: "O"})
    return _train_and_read(
        out_dir, net, identity, blocks, readout, dataset, on_bad_image, section, run_on, f"block {block}", images
    )


def dictionary_stage_group(
    out_dir: str,
    *,
    model: dict,
    dataset: str,
    on_bad_image: str,
    stage_blocks: list[str],
    o_relu: str,
    section: dict,
    device: str,
    gpus: int | None = None,
    images: str | None = None,
) -> str:
    """The stage-level variant (``dictionary.scope: stage``): one crosscoder per network stage whose
    encoder reads the stage's first studied block (:func:`resstream.dictionary.stage_scope.stage_readout`)
    and whose decoders write I, B and O of every studied block of the stage."""
    net, identity, blocks, run_on = _network(model, device, gpus)
    refs, inputs, roles = stage_readout(blocks, stage_blocks, section["inputs"], o_relu)
    readout = Readout(
        refs,
        inputs,
        {b: (roles[b]["I"], roles[b]["B"]) for b in stage_blocks},
        {b: roles[b]["O"] for b in stage_blocks},
    )
    return _train_and_read(
        out_dir,
        net,
        identity,
        blocks,
        readout,
        dataset,
        on_bad_image,
        section,
        run_on,
        "stage " + "+".join(stage_blocks),
        images,
    )


def _network(model: dict, device: str, gpus: int | None):
    net, identity = load_model_param(model)
    run_on = resolve_device(device, gpus)
    net.to(run_on).eval()
    return net, identity, model_blocks(net), run_on


def _train_and_read(
    out_dir: str,
    net,
    identity,
    blocks,
    readout: Readout,
    dataset: str,
    on_bad_image: str,
    section: dict,
    run_on,
    what: str,
    images: str | None = None,
) -> str:
    os.makedirs(out_dir, exist_ok=True)
    records = read_image_manifest(images).records if images else scan_image_folder(dataset)
    train_recs, heldout_recs = _split(records, section["heldout_images"], section["seed"])
    source = _tokens(net, blocks, readout.refs, dataset, on_bad_image, train_recs, section, run_on)
    dims = {name: int(v.shape[1]) for name, v in source.chunk(0).items()}
    cfg = training_config(section, dims, len(train_recs), readout.inputs, list(readout.refs))
    log.info(
        "%s: %d latents over %s, k %d, %d refills of %d tokens, %d training / %d held-out images",
        what,
        cfg["n_latents"],
        "+".join(cfg["inputs"]),
        cfg["k"],
        cfg["refills"],
        section["images_per_refill"] * section["positions_per_image"],
        len(train_recs),
        len(heldout_recs),
    )
    checkpoint = checkpoint_path(out_dir)
    crosscoder = train_crosscoder(cfg, source, checkpoint, device=str(run_on)).cpu()
    save_dictionary(os.path.join(out_dir, "dictionary.safetensors"), crosscoder, cfg, identity.as_dict())
    heldout = _tokens(net, blocks, readout.refs, dataset, on_bad_image, heldout_recs, section, run_on)
    _write_readings(out_dir, crosscoder, heldout, heldout_recs, section, readout)
    os.remove(checkpoint)
    return out_dir


def checkpoint_path(out_dir: str) -> str:
    """Beside the block's folder, not in it: Snakemake deletes a failed job's output folder, and the
    checkpoint must outlive a killed job for the next one to resume."""
    return os.path.normpath(out_dir) + ".checkpoint.pt"


def _split(records: list, heldout: int, seed: int) -> tuple[list, list]:
    """Held-out images: the first ``heldout`` of a seeded order; the rest train."""
    if heldout >= len(records):
        raise ConfigError(
            f"dictionary.heldout_images: {heldout} held-out images leave none of the dataset's "
            f"{len(records)} for training; set it below {len(records)}"
        )
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(seed)).tolist()
    n = heldout
    return [records[i] for i in sorted(order[n:])], [records[i] for i in sorted(order[:n])]


def _tokens(net, blocks, refs, dataset, on_bad_image, records, section, device) -> ImageTokens:
    pictures = ImageFolderDataset(dataset, on_bad_image=on_bad_image, records=records)
    return ImageTokens(
        net,
        blocks,
        refs,
        pictures,
        section["positions_per_image"],
        min(section["images_per_refill"], len(records)),
        section["seed"],
        device,
    )


def _write_readings(
    out_dir: str, crosscoder, heldout: ImageTokens, records: list, section: dict, readout: Readout
) -> None:
    """``quality.json`` (held-out FVE per tensor, L0, dead and dense shares), ``features.json`` (per
    feature: M and group (per block for a stage), decoder norms, firing share, top images with their
    peak cell) and ``channels.json`` (per channel of O, the fewest features that make
    ``channel_share`` of it)."""
    chunks = math.ceil(len(records) / heldout.images_per_chunk)
    top = science.TopImages(crosscoder.n_latents, section["exemplars"])
    maps_chunks = []
    for c in range(chunks):
        idx = heldout.images_of(c)[: len(records) - c * heldout.images_per_chunk]
        items = [(i, heldout.dataset[i]) for i in idx]
        idx = [i for i, (_, _, ok) in items if ok]  # an unreadable image (on_bad_image: skip) has no map
        maps = heldout.maps(torch.stack([x for _, (x, _, ok) in items if ok]))
        top.add(science.map_activations(crosscoder, maps), idx)
        maps_chunks.append({r: m.flatten(2).permute(0, 2, 1).reshape(-1, m.shape[1]) for r, m in maps.items()})
    q = science.quality(crosscoder, maps_chunks, section["dense_share"])
    h, w = next(iter(maps.values())).shape[2:]
    with open(os.path.join(out_dir, "quality.json"), "w") as f:
        json.dump(
            {
                "fve": q.fve,
                "l0": q.l0,
                "dead_share": q.dead_share,
                "dense_share": q.dense_share,
                "tokens": q.tokens,
                "heldout_images": len(records),
                "latents": crosscoder.n_latents,
            },
            f,
            indent=1,
        )
    mixes = {
        label: _mix_reading(crosscoder, i_name, b_name, section) for label, (i_name, b_name) in readout.mix.items()
    }
    norms = science.decoder_norms(crosscoder)
    features = []
    for i in range(crosscoder.n_latents):
        mix = {label: {k: v[i] if k == "group" else _num(v[i]) for k, v in m.items()} for label, m in mixes.items()}
        features.append(
            {
                **(mix[None] if None in mix else {"blocks": mix}),
                "feature": i,
                "decoder_norm": {t: float(n[i]) for t, n in norms.items()},
                "firing": float(q.firing[i]),
                "top_images": [
                    {"image": str(records[j].path), "activation": float(v), "cell": [int(c // w), int(c % w)]}
                    for j, v, c in zip(top.image[i], top.value[i], top.cell[i])
                    if v > 0
                ],
            }
        )  # a feature silent on an image has no exemplar there
    with open(os.path.join(out_dir, "features.json"), "w") as f:
        json.dump({"map_size": [int(h), int(w)], "features": features}, f)
    needed = {
        label: science.features_per_channel(crosscoder, q.mean_activation, o_name, section["channel_share"]).tolist()
        for label, o_name in readout.outputs.items()
    }
    with open(os.path.join(out_dir, "channels.json"), "w") as f:
        json.dump({"share": section["channel_share"], "features_per_O_channel": needed.get(None, needed)}, f)


def _mix_reading(crosscoder, i_name: str, b_name: str, section: dict) -> dict:
    """Every feature's ``M``, ``M_clamped`` and ``group`` from its decoders into ``i_name`` and ``b_name``."""
    mr = science.feature_mix_ratio(crosscoder, i_name, b_name)
    return {"M": mr.raw, "M_clamped": mr.clamped, "group": [str(g) for g in mix_group(mr.raw, section["mix_factor"])]}


def _num(x: float):
    return float(x) if np.isfinite(x) else None


def dictionary_job(job, gpus: int | None = None) -> str:
    """Entry point of a ``dictionary`` job, one block's crosscoder, or of a ``dictionary_stage`` job,
    one network stage's (``dictionary.scope: stage``; their specs: :mod:`resstream.dictionary.jobs`)."""
    params = job.params
    common = dict(
        model=params.model,
        dataset=params.dataset,
        on_bad_image=params.on_bad_image,
        o_relu=params.o_relu,
        section=params.section,
        device=params.device,
        gpus=gpus,
        images=job.input.images,
    )
    if job.rule == "dictionary_stage":
        return dictionary_stage_group(job.output.folder, stage_blocks=params.stage_blocks, **common)
    return dictionary_block(job.output.folder, block=job.wildcards.block, **common)
