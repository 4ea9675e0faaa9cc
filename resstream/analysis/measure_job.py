"""The measurement job of one block: load the network, measure its I, B and O against the FVs
(:mod:`resstream.analysis.measure`) or the top-9 dataset images
(:mod:`resstream.analysis.measure_dataset`), add the branch weights and rho, write the raw table.
"""

from __future__ import annotations

import logging

import pandas as pd

from resstream.analysis.measure import measure_fv_block
from resstream.analysis.measure_dataset import add_weights_and_rho, measure_imagenet_block, read_top_images
from resstream.base.tables import write_table
from resstream.model.device import resolve_device
from resstream.model.walk import model_blocks
from resstream.model.weights import load_model_param

log = logging.getLogger(__name__)


def run_block_measurement(
    stimulus: str,
    block: str,
    channels: list[int],
    o_relu: str,
    model: dict,
    activations_path: str,
    out_csv: str,
    *,
    batch_size: int,
    device: str,
    fv_dirs=(),
    gpus: int | None = None,
    images: str | None = None,
) -> pd.DataFrame:
    """The measurement job of one block (``stimulus`` fv | imagenet): its raw table with provenance.
    ``fv_dirs``: the FV chunk folders of the block's I, B and O layers (fv only); ``model``: the
    rule's model param (:func:`resstream.model.weights.model_param`); ``batch_size``, ``device`` and
    ``gpus`` (what the job declared, :func:`resstream.model.device.resolve_device`) change how it runs.
    ``images``: the dataset's image manifest (imagenet only), the images the measurement opens."""
    net, identity = load_model_param(model)
    run_on = resolve_device(device, gpus)
    net = net.to(run_on)
    blocks = model_blocks(net)
    log.info("measuring block %s with %s stimuli on %s; weights %s", block, stimulus, run_on, identity.label)
    if stimulus == "fv":
        df, meta = measure_fv_block(net, identity, blocks, block, channels, o_relu, fv_dirs, batch_size, run_on)
        dataset_columns = None
    else:  # the columns rho needs are among those the measurement reads: the file is read once
        top_images = read_top_images(activations_path, identity, blocks, block, o_relu, channels, images)
        df, meta = measure_imagenet_block(
            net, identity, blocks, block, channels, o_relu, activations_path, batch_size, run_on, top_images=top_images
        )
        dataset_columns = top_images.rho_columns()
    df = add_weights_and_rho(df, net.cpu(), blocks, block, o_relu, activations_path, identity, dataset_columns)
    write_table(df, out_csv, meta)
    return df


def measure_job(job, gpus: int | None = None) -> pd.DataFrame:
    """Entry point of a ``measure_fv`` / ``measure_imagenet`` job (its spec: :mod:`resstream.analysis.jobs`):
    the block's raw table ``output.csv``."""
    params = job.params
    imagenet = params.stimulus == "imagenet"
    return run_block_measurement(
        params.stimulus,
        job.wildcards.block,
        params.channels,
        params.o_relu,
        params.model,
        job.input.activations,
        job.output.csv,
        fv_dirs=[] if imagenet else job.input.fv,
        batch_size=job.resources.batch_size,
        device=params.device,
        gpus=gpus,
        images=job.input.images if imagenet else None,
    )
