"""The atlas's two jobs: ``write_block`` (one block's folder: its table page, one page per unit and
their thumbnails, built under a temporary name and renamed into place when complete) and
``write_index`` (the index page, the stylesheet and the script, each written atomically).

Layout under ``results/atlas`` (opens from the file system, no server):

* ``index.html``, ``atlas.css``, ``atlas.js``   the index of blocks (``write_index``)
* ``{block}/index.html``                        a block's channel table, sortable and filterable
* ``{block}/unit{c:04d}.html``                  one unit: centre FVs of I, B, O, channel FVs,
                                                 top-9 grids, its numbers, previous / next links
* ``{block}/img/*.jpg``                         thumbnails sized for the pages (``write_block``)

One folder per block so that changing one block's settings rebuilds only that block's pages.
Every page names the weights and carries a banner when they are not pretrained or not
torchvision's (a checkpoint of one's own).  The numbers on a unit page are the metric tables'
values (``analysis/{block}/{fv,imagenet}_table.csv``) printed with 6 significant digits; each cell
also holds the table's value in ``data-value``.
"""

from __future__ import annotations

import json
import logging
import os

from markupsafe import Markup

from resstream.analysis import scorecard
from resstream.analysis.summary import read_summary
from resstream.atlas.content import unit_page_name
from resstream.atlas.dictionary_pages import feature_links
from resstream.atlas.histogram import mix_histogram
from resstream.atlas.lesions import LesionSection, read_lesion_section
from resstream.atlas.load import (
    AtlasError,
    BlockTables,
    Pictures,
    read_block_tables,
    read_index_card,
    read_pictures,
    table_settings,
)
from resstream.atlas.render import render, static_text
from resstream.atlas.thumbnails import Thumbnails, row_thumbnail, unit_thumbnails
from resstream.base.outputs import partial_dir, publish_dir, remove_stale_partials, write_text_atomic
from resstream.base.tables import read_table

log = logging.getLogger("resstream.atlas.write")


# --- a block's folder ------------------------------------------------------------------------------


def write_block(
    block: str,
    fv_csv: str,
    imagenet_csv: str | None,
    layers: dict[str, str],
    fv_dirs,
    channel_fv_dirs,
    exemplar_dirs,
    out_dir: str,
    settings: dict,
    lesion_files: dict | None = None,
    dictionary_pictures: str | None = None,
) -> dict:
    """The block's table page, one page per unit and their thumbnails, into ``out_dir`` (built
    under a temporary name, renamed into place when complete), from the block's tables, its FV and
    channel-FV chunk folders and the exemplar folders of its layers.  ``settings``: the config's
    ``atlas`` picture sizes, JPEG quality and ``channel_fvs`` roles.  ``lesion_files`` (when the
    ablation stage ran): ``{ratios, mix, figure}``, the stage's files the block page's lesion
    section shows.  ``dictionary_pictures``: the block's dictionary pictures folder when the
    dictionary stage is on (its pages are linked)."""
    tables = read_block_tables(block, fv_csv, imagenet_csv)
    lesions = read_lesion_section(block, **lesion_files, page_dir=out_dir) if lesion_files else None
    pictures = read_pictures(fv_dirs, channel_fv_dirs, exemplar_dirs)
    remove_stale_partials(out_dir)
    building = partial_dir(out_dir)
    thumbs = Thumbnails(building, out_dir, settings["jpeg_quality"])
    links = feature_links(dictionary_pictures, block) if dictionary_pictures else None
    row_thumbs = write_unit_pages(building, block, tables, layers, pictures, thumbs, settings, links)
    write_block_page(building, block, tables, layers, row_thumbs, lesions, links)
    channels = [u["channel"] for u in tables.units]
    with open(os.path.join(building, "atlas_block.json"), "w") as f:
        json.dump(
            {
                "block": block,
                "channels": channels,
                "layers": layers,
                "weights": tables.weights,
                "missing_pictures": thumbs.missing,
            },
            f,
            indent=1,
        )
    publish_dir(
        building,
        out_dir,
        AtlasError(f"{out_dir} already holds atlas pages; delete it (or let snakemake rerun the job) to rebuild"),
    )
    for what in thumbs.missing:
        log.warning("atlas block %s: no picture for %s (the page shows 'not available')", block, what)
    log.info("atlas block %s: %d unit pages in %s", block, len(channels), out_dir)
    return {"block": block, "units": len(channels), "missing_pictures": thumbs.missing}


def write_unit_pages(
    building: str,
    block: str,
    tables: BlockTables,
    layers: dict,
    pictures: Pictures,
    thumbs: Thumbnails,
    settings: dict,
    dictionary_links: dict | None = None,
) -> dict:
    """Every unit's page and thumbnails; returns the block table's thumbnail of each channel."""
    channels = [u["channel"] for u in tables.units]
    row_thumbs = {}
    for i, unit in enumerate(tables.units):
        c = unit["channel"]
        unit_pictures = unit_thumbnails(thumbs, pictures, layers, c, settings)
        row_thumbs[c] = row_thumbnail(thumbs, pictures, layers, c, settings)
        page = render(
            "unit.html.j2",
            root="../",
            weights=tables.weights,
            block=block,
            unit=unit,
            c=c,
            layers=layers,
            pictures=unit_pictures,
            top9_lists=pictures.top9_lists,
            prev=channels[i - 1] if i > 0 else None,
            next=channels[i + 1] if i + 1 < len(channels) else None,
            dictionary_links=dictionary_links,
        )
        with open(os.path.join(building, unit_page_name(c)), "w") as f:
            f.write(page)
    return row_thumbs


def write_block_page(
    building: str,
    block: str,
    tables: BlockTables,
    layers: dict,
    row_thumbs: dict,
    lesions: LesionSection | None = None,
    dictionary_links: dict | None = None,
) -> None:
    page = render(
        "block.html.j2",
        root="../",
        weights=tables.weights,
        block=block,
        units=tables.units,
        layers=layers,
        row_thumbs=row_thumbs,
        lesions=lesions,
        dictionary_links=dictionary_links,
        settings_json=json.dumps(table_settings(tables.meta), indent=1, default=str),
    )
    with open(os.path.join(building, "index.html"), "w") as f:
        f.write(page)


# --- the index -------------------------------------------------------------------------------------


def write_index(
    blocks: list[str],
    fv_csvs: list[str],
    summary_json: str,
    out_html: str,
    out_css: str,
    out_js: str,
    scorecard_csv: str | None = None,
) -> dict:
    """The atlas index: one card per block with its M histogram (from the FV tables) and the
    spectrum and scale-invariance counts of ``summary_json`` (the analysis_summary rule's
    ``summary.json``), then the reproduction scorecard (``paper_check.csv``) if given; plus the
    stylesheet and script every page links.  Returns each block's counts as shown."""
    summary = read_summary(summary_json)
    cards = [read_index_card(block, fv_csv, summary, summary_json) for block, fv_csv in zip(blocks, fv_csvs)]
    page = render(
        "index.html.j2",
        root="",
        weights=summary.get("weights"),
        cards=[(card, mix_histogram(card.m_values, card.mix_factor)) for card in cards],
        scorecard=scorecard_section(scorecard_csv) if scorecard_csv else None,
    )
    write_text_atomic(out_css, static_text("atlas.css") + scorecard.SCORECARD_CSS)
    write_text_atomic(out_js, static_text("atlas.js"))
    write_text_atomic(out_html, page)
    return {card.block: card.counts() for card in cards}


def scorecard_section(scorecard_csv: str) -> Markup:
    """The scorecard's HTML section, escaped by its own template (resstream.analysis.scorecard), so
    marked safe here."""
    return Markup(scorecard.html_fragment(*read_table(scorecard_csv)))


def atlas_block_job(job) -> dict:
    """Entry point of an ``atlas_block`` job (its spec: :mod:`resstream.atlas.jobs`)."""
    given = job.input
    lesions = dict(zip(("ratios", "mix", "figure"), given.lesions)) if given.lesions else None
    pictures = given.dictionary_pictures[0] if given.dictionary_pictures else None
    return write_block(
        job.wildcards.block,
        given.fv,
        given.imagenet,
        job.params.layers,
        given.fv_images,
        given.channel_fvs,
        given.exemplars,
        job.output.folder,
        job.params.settings,
        lesion_files=lesions,
        dictionary_pictures=pictures,
    )


def atlas_index_job(job) -> dict:
    """Entry point of the ``atlas_index`` job (its spec: :mod:`resstream.atlas.jobs`)."""
    given, out = job.input, job.output
    return write_index(
        job.params.blocks, given.fv, given.summary, out.html, out.css, out.js, scorecard_csv=given.scorecard
    )
