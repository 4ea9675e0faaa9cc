"""The ``ablation`` job: every lesion condition of the config, evaluated in one batched pass over
the labelled folder, written to ``ablation.csv`` (with a JSON sidecar), drawn as the follow-up
paper's figure, the mix classes' causal table ``mix_classes.csv`` (empty unless the sets hold
mix classes and the paths I and B) and ``lesion_ratios.csv`` (per target condition and scale: its
accuracy, the random lesions' mean and standard error, the ratio; what the figure draws, the
atlas's lesion sections and the scorecard's follow-up rows show).

Conditions: for each block, set, kind and path, the target set (trial -1) and ``trials`` random
sets of its size from the block's other channels (set ``random:<set>``, the same channels for
every kind and path).  Mean constants are read from ``activations.h5`` (the layer the lesion's path
names: O, B or I), never from a second pass.
"""

from __future__ import annotations

import logging
import os

import pandas as pd

from resstream.ablation.channel_sets import (
    RANDOM_PREFIX,
    mark_kept,
    random_sets,
    set_seed,
    table_channel_set,
)
from resstream.ablation.evaluate import Condition, evaluate_lesions, image_batches
from resstream.ablation.figure import ratio_figure, ratio_table
from resstream.ablation.lesion import Lesion, clamped_means, lesion_constants
from resstream.ablation.mix_table import mix_class_table
from resstream.ablation.scales import study_scales
from resstream.activations.store import read_layer
from resstream.base.tables import read_table, write_table
from resstream.data.image_folder import scan_image_folder
from resstream.model.blocks import block_lookup
from resstream.model.device import resolve_device
from resstream.model.walk import model_blocks
from resstream.model.weights import load_model_param

log = logging.getLogger(__name__)
RATIOS_CSV = "lesion_ratios.csv"  # beside ablation.csv (resstream.base.paths.ablation_file)
CSV_COLUMNS = ["block", "set", "kind", "path", "trial", "scale", "fill", "accuracy", "kl", "n", "kept"]


def block_conditions(block: str, n_channels: int, targets: dict, means: dict, settings: dict) -> list[Condition]:
    """The conditions of one block: ``targets`` {set: channels}, ``means`` {path: [C] constants}."""
    out = []
    for set_name, target in targets.items():
        controls = random_sets(n_channels, target, settings["trials"], set_seed(settings["seed"], block, set_name))
        for kind in settings["kinds"]:
            for path in settings["paths"]:

                def lesion(channels):
                    return Lesion(block, path, channels, lesion_constants(kind, channels, means[path]))

                out.append(Condition(set_name, kind, -1, lesion(target)))
                out += [Condition(RANDOM_PREFIX + set_name, kind, t, lesion(c)) for t, c in enumerate(controls)]
    return out


def _targets(block: str, settings: dict, table_csv: str | None) -> dict:
    table = read_table(table_csv)[0] if table_csv else None
    return {
        name: table_channel_set(table, block, name, settings["channels"].get(block, ())) for name in settings["sets"]
    }


def _means(activations: str, layers: dict, settings: dict) -> dict:
    """{path: [C] clamped means} of one block, read where the lesion acts (zero ablation reads none)."""
    if "mean" not in settings["kinds"]:
        return {path: None for path in settings["paths"]}
    return {path: clamped_means(read_layer(activations, layers[path])).tolist() for path in settings["paths"]}


def every_nth_class(records: list, stride: int) -> list:
    """The images of classes 0, stride, 2·stride, ...: labels keep their ImageNet ids, so accuracy is
    still read against the network's 1,000 outputs."""
    return [r for r in records if r.class_id % stride == 0]


def run_ablation(
    csv: str,
    mix_csv: str,
    png: str,
    pdf: str,
    *,
    model: dict,
    dataset: str,
    activations: str | None,
    tables: dict,
    layers: dict,
    settings: dict,
    device: str,
    batch_size: int,
    workers: int,
    gpus: int | None = None,
) -> pd.DataFrame:
    """The whole stage: ``tables`` {block: metric-table CSV or None (list sets only)}, ``layers``
    {block: {role: activations layer}}, ``settings`` the config's ``ablation`` section."""
    net, identity = load_model_param(model)
    dev = resolve_device(device, gpus)
    net = net.to(dev).eval()
    blocks = model_blocks(net)
    conditions, set_sizes = {}, {}
    for block in settings["blocks"]:
        info = block_lookup(blocks, block)
        means = _means(activations, {p: layers[block][p] for p in settings["paths"]}, settings)
        targets = _targets(block, settings, tables.get(block))
        set_sizes.update({(block, name): len(t) for name, t in targets.items()})
        conditions[block] = block_conditions(block, info.channels, targets, means, settings)
    scales = study_scales(settings["scales"], settings["down_fills"])
    records = every_nth_class(scan_image_folder(dataset), settings["class_stride"])
    log.info(
        "ablation: %d conditions x %d scales on %d images",
        sum(map(len, conditions.values())),
        len(scales),
        len(records),
    )
    rows = evaluate_lesions(
        net, blocks, conditions, image_batches(dataset, records, scales, batch_size, workers), scales, dev
    )
    df = mark_kept(pd.DataFrame(rows), settings["margin"])[CSV_COLUMNS]
    meta = {
        "weights": identity.as_dict(),
        "ablation": settings,
        "dataset": os.path.abspath(dataset),
        "accuracy": "top-1, percent of readable images",
        "kl": "mean KL(plain || lesioned) of the softmax, nats",
    }
    write_table(df, csv, meta)
    write_table(
        mix_class_table(df, set_sizes),
        mix_csv,
        {
            **meta,
            "agrees": "the paper's reading: branch (B) "
            "lesions hurt overwrite channels more, skip (I) lesions hurt skip channels more (KL beyond random)",
        },
    )
    ratios = ratio_table(df)
    write_table(ratios, os.path.join(os.path.dirname(csv), RATIOS_CSV), meta)
    ratio_figure(ratios, identity.as_dict(), png, pdf)
    return df


def ablation_job(job, gpus: int | None = None) -> pd.DataFrame:
    """Entry point of the ``ablation`` job (its spec: :mod:`resstream.ablation.jobs`)."""
    params, resources, out = job.params, job.resources, job.output
    return run_ablation(
        out.csv,
        out.mix,
        out.png,
        out.pdf,
        model=params.model,
        dataset=params.dataset,
        activations=params.activations,
        tables=params.tables,
        layers=params.layers,
        settings=params.settings,
        device=params.device,
        batch_size=resources.batch_size,
        workers=resources.workers,
        gpus=gpus,
    )
