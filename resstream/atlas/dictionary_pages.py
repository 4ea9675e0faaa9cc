"""The atlas's dictionary-feature pages (when the dictionary stage is on): per studied block a folder
``atlas/dictionary/{block}/`` with ``index.html`` (the block's pictured features) and one
``feature{f:05d}.html`` per feature: its FV, its top held-out images and the patches around its peak
cell, its decoder norms into I, B and O, its M and group, and links to the unit pages of the channels
of O its decoder writes most.  It reads the dictionary stage's JSON files only (``features.json`` of
the block's dictionary folder, ``pictures.json`` of its pictures folder), never its code.

The block pages and unit pages link here through :func:`feature_links` (``write_block``)."""

from __future__ import annotations

import json
import logging
import os

from resstream.atlas.content import unit_page_name
from resstream.atlas.load import AtlasError
from resstream.atlas.render import render
from resstream.atlas.thumbnails import Thumbnails
from resstream.base.outputs import partial_dir, publish_dir, remove_stale_partials

log = logging.getLogger("resstream.atlas.dictionary_pages")


def feature_page_name(feature: int) -> str:
    return f"feature{feature:05d}.html"


def read_pictured_features(dictionary_dir: str, pictures_dir: str) -> tuple[list[dict], dict]:
    """``(features, pictures record)``: the pictured features' records of ``features.json`` (M,
    group, decoder norms, firing, top images) merged with their ``pictures.json`` entries (FV status,
    patch boxes, the channels the decoder writes most)."""
    with open(os.path.join(dictionary_dir, "features.json")) as f:
        science = {x["feature"]: x for x in json.load(f)["features"]}
    with open(os.path.join(pictures_dir, "pictures.json")) as f:
        pictures = json.load(f)
    return [{**science[p["feature"]], **p} for p in pictures["features"]], pictures


def feature_links(pictures_dir: str, block: str) -> dict:
    """What a block's own pages link: ``{"index": href, "features": [feature, ...], "by_channel":
    {channel: [[feature, weight, href], ...]}}``, hrefs relative to the block's atlas folder."""
    with open(os.path.join(pictures_dir, "pictures.json")) as f:
        pictured = json.load(f)["features"]
    base = f"../dictionary/{block}/"
    by_channel: dict[int, list] = {}
    for p in pictured:
        for channel, weight in p["writes_most"]:
            by_channel.setdefault(channel, []).append([p["feature"], weight, base + feature_page_name(p["feature"])])
    return {
        "index": base + "index.html",
        "features": [[p["feature"], base + feature_page_name(p["feature"])] for p in pictured],
        "by_channel": by_channel,
    }


def write_feature_pages(
    block: str, dictionary_dir: str, pictures_dir: str, out_dir: str, settings: dict, studied_channels: list[int]
) -> dict:
    """The block's dictionary folder of the atlas, built aside and renamed into place; ``settings``:
    the config's ``atlas`` picture sizes and JPEG quality; ``studied_channels``: the channels with a
    unit page (the others a feature writes are named, not linked)."""
    features, record = read_pictured_features(dictionary_dir, pictures_dir)
    remove_stale_partials(out_dir)
    building = partial_dir(out_dir)
    thumbs = Thumbnails(building, out_dir, settings["jpeg_quality"])
    block_href = f"../../{block}/"  # the block's own atlas folder
    ordered = [f["feature"] for f in features]
    for i, feature in enumerate(features):
        f = feature["feature"]
        pictures = {
            name: thumbs.make(
                os.path.join(pictures_dir, f"feature{f:05d}{suffix}.png"),
                f"{name}_{f:05d}.jpg",
                px,
                f"{name} of feature {f}",
            )
            for name, suffix, px in (
                ("fv", "", settings["fv_px"]),
                ("top", "_top", settings["top9_px"]),
                ("patches", "_patches", settings["top9_px"]),
            )
        }
        feature["row_thumb"] = pictures["fv"]
        page = render(
            "feature.html.j2",
            root="../../",
            weights=record["weights"],
            block=block,
            block_href=block_href,
            feature=feature,
            pictures=pictures,
            unit_page=unit_page_name,
            studied=set(studied_channels),
            prev=ordered[i - 1] if i > 0 else None,
            next=ordered[i + 1] if i + 1 < len(ordered) else None,
            page_of=feature_page_name,
        )
        with open(os.path.join(building, feature_page_name(f)), "w") as out:
            out.write(page)
    index = render(
        "features.html.j2",
        root="../../",
        weights=record["weights"],
        block=block,
        block_href=block_href,
        features=features,
        page_of=feature_page_name,
    )
    with open(os.path.join(building, "index.html"), "w") as out:
        out.write(index)
    publish_dir(
        building,
        out_dir,
        AtlasError(f"{out_dir} already holds feature pages; delete it (or let snakemake rerun the job) to rebuild"),
    )
    log.info("atlas block %s: %d feature pages in %s", block, len(features), out_dir)
    return {"block": block, "features": ordered, "missing_pictures": thumbs.missing}


def atlas_dictionary_job(job) -> dict:
    """Entry point of an ``atlas_dictionary`` job (its spec: :func:`resstream.atlas.jobs.atlas_dictionary_spec`)."""
    return write_feature_pages(
        job.wildcards.block,
        job.input.dictionary,
        job.input.pictures,
        job.output[0],
        job.params.settings,
        job.params.studied,
    )
