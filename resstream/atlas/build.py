"""Unit atlas: a static HTML site of every studied unit (plain HTML, CSS, a little JavaScript).

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

import html
import json
import logging
import math
import os

import numpy as np
import pandas as pd
from PIL import Image

from resstream.analysis import metrics
from resstream.analysis import scorecard
from resstream.errors import UserError
from resstream.workflow.outputs import partial_dir, publish_dir, remove_stale_partials, write_text_atomic
from resstream.workflow.paths import EXEMPLAR_LIST, chunk_unit_pngs, layer_unit_pngs
from resstream.analysis.tables import read_table

log = logging.getLogger("resstream.atlas.build")

KINDS = ("I", "B", "O")
KIND_TITLES = {"I": "I (block input)", "B": "B (block branch, bn2)", "O": "O (block output)"}
GROUPS = (metrics.OVERWRITE, metrics.MIX, metrics.SKIP, metrics.NO_GROUP)
GROUP_COLORS = {metrics.OVERWRITE: "#d62728", metrics.MIX: "#2ca02c", metrics.SKIP: "#1f77b4", metrics.NO_GROUP: "#999999"}
RANDOM_BANNER = "RANDOM WEIGHTS — not pretrained: these pictures and numbers say nothing about the trained network"
CUSTOM_BANNER = "CUSTOM CHECKPOINT — not torchvision's weights (model.checkpoint: any); its file sha256 is below"

# Columns of the block table: (CSV column, header, kind); kind: num | text | bool.
TABLE_COLUMNS = (
    ("channel", "channel", "num"),
    ("mix_group", "group", "text"),
    ("M", "M", "num"),
    ("m", "m", "num"),
    ("n", "n", "num"),
    ("SM", "SM", "num"),
    ("pass_all", "scale inv. (all)", "bool"),
    ("pass_nomix", "scale inv. (no mix)", "bool"),
    ("status", "status", "text"),
    ("imagenet_M", "M (ImageNet)", "num"),
    ("imagenet_pass_all", "scale inv. (ImageNet)", "bool"),
)
# Numbers of a unit page, per stimulus (FV / ImageNet top-9): (CSV column, meaning).
UNIT_NUMBERS = (
    ("M", "mix ratio M = O(x_I) / O(x_B), clamped to 5"),
    ("M_raw", "M before the clamp (10 / 0 by rule)"),
    ("mix_group", "skip / mix / overwrite"),
    ("mix_status", "how M was obtained"),
    ("m", "m: scale criterion, B side (Eq 3)"),
    ("n", "n: scale criterion, I side (Eq 4)"),
    ("SM", "scale metric SM (Eq 5)"),
    ("pass_all", "passes all criteria (Eqs 2-5)"),
    ("pass_nomix", "passes without the mix criterion (Eqs 3-4)"),
    ("status", "unit status"),
    ("out_in", "O(x_I)"),
    ("out_mid", "O(x_B)"),
    ("in_in", "I(x_I)"),
    ("mid_mid", "B(x_B)"),
    ("in_mid", "B(x_I)"),
    ("I_of_xB", "I(x_B)"),
    ("B_of_SxI", "B(S x_I)"),
    ("I_of_SinvxB", "I(S⁻¹ x_B)"),
)


class AtlasError(UserError, RuntimeError):
    """A missing table or picture the atlas needs; the message names it and the fix."""


# --- values ----------------------------------------------------------------------------------------


def fmt_value(value) -> str:
    """How a table value is printed: 6 significant digits, NaN as '—', flags as yes / no."""
    if value is None:
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "—" if math.isnan(value) else f"{float(value):.6g}"
    return str(value)


def raw_value(value) -> str:
    """The value as the table holds it (``data-value``; what the browser sorts and tests compare)."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return "nan" if math.isnan(value) else repr(float(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return "" if value is None else str(value)


def block_units(fv: pd.DataFrame, imagenet: pd.DataFrame | None) -> list[dict]:
    """One record per channel: the FV table's row, plus the ImageNet row under ``imagenet_*``."""
    by_channel = {}
    if imagenet is not None:
        by_channel = {int(r["channel"]): r for r in imagenet.to_dict("records")}
    units = []
    for row in fv.sort_values("channel").to_dict("records"):
        rec = dict(row)
        rec["channel"] = int(row["channel"])
        other = by_channel.get(rec["channel"])
        for key, value in (other or {}).items():
            rec[f"imagenet_{key}"] = value
        units.append(rec)
    return units


def mix_histogram_svg(m_values, mix_factor: float = 1.5, width: int = 240, height: int = 90) -> str:
    """Fig 2's histogram of clamped M (20 bins on [0, 5]) as an inline SVG, bars coloured by the
    spectrum group of their bin centre with the tables' factor f (overwrite <= 1/f < mix < f <= skip)."""
    values = np.asarray([v for v in m_values if v is not None and not math.isnan(v)], dtype=float)
    counts, edges = np.histogram(values, bins=metrics.HIST_BINS)
    top = max(1, int(counts.max()) if counts.size else 1)
    bw = width / len(counts)
    bars = []
    for i, count in enumerate(counts):
        centre = (edges[i] + edges[i + 1]) / 2
        group = metrics.mix_group(np.array([centre]), mix_factor)[0]
        h = (height - 14) * count / top
        bars.append(
            f'<rect x="{i * bw:.1f}" y="{height - 12 - h:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" '
            f'fill="{GROUP_COLORS[group]}"><title>M {edges[i]:g}–{edges[i + 1]:g}: {count}</title></rect>'
        )
    ticks = "".join(
        f'<text x="{min(max(x / 5 * width, 4), width - 4):.1f}" y="{height - 1}" font-size="9" text-anchor="middle">{x}</text>'
        for x in range(0, 6)
    )
    return (
        f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="histogram of M, {len(values)} channels">{"".join(bars)}{ticks}</svg>'
    )


# --- images ----------------------------------------------------------------------------------------


def thumbnail(src: str, dst: str, px: int, quality: int) -> None:
    """A JPEG no larger than px x px (aspect kept), for display; the full PNG stays where it is."""
    with Image.open(src) as img:
        img = img.convert("RGB")
        img.thumbnail((px, px), Image.Resampling.LANCZOS)
        img.save(dst, "JPEG", quality=quality, optimize=True)


def read_exemplar_lists(exemplar_dirs) -> dict[tuple[str, int], list[tuple[str, float]]]:
    """``{(layer, channel): [(image path, activation), ...]}`` from each layer folder's ``exemplars.csv``."""
    out: dict[tuple[str, int], list[tuple[str, float]]] = {}
    for folder in exemplar_dirs:
        path = os.path.join(folder, EXEMPLAR_LIST)
        if not os.path.exists(path):
            continue
        df = read_table(path)[0].sort_values(["layer", "channel", "rank"])
        for row in df.itertuples(index=False):
            out.setdefault((row.layer, int(row.channel)), []).append((str(row.path), float(row.activation)))
    return out


# --- page parts ------------------------------------------------------------------------------------


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def weights_line(weights: dict | None, element_id: str = "weights") -> str:
    w = weights or {}
    parts = [f"<b>weights</b> {_e(w.get('label') or 'unknown')}"]
    for key in ("source", "state_dict_sha256", "file_sha256"):
        if w.get(key):
            parts.append(f"{key} <code>{_e(w[key])}</code>")
    return f'<p class="weights" id="{element_id}">' + " · ".join(parts) + "</p>"


def banner(weights: dict | None) -> str:
    if not (weights and weights.get("pretrained")):
        return f'<div class="banner" id="random-weights-banner">{_e(RANDOM_BANNER)}</div>'
    if weights.get("kind") == "custom":
        return f'<div class="banner custom" id="custom-weights-banner">{_e(CUSTOM_BANNER)}</div>'
    return ""


def page(title: str, body: str, weights: dict | None, root: str) -> str:
    """A whole page; ``root``: relative path to the atlas folder (for CSS / JS)."""
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="stylesheet" href="{root}atlas.css"></head>\n<body>\n'
        f"{banner(weights)}\n{weights_line(weights)}\n{body}\n"
        f'<footer>{weights_line(weights, "weights-footer")}<p>made by resstream</p></footer>\n'
        f'<script src="{root}atlas.js"></script>\n</body></html>\n'
    )


def _cell(key: str, value, href: str | None = None, attrs: str = "") -> str:
    text = _e(fmt_value(value))
    if href:
        text = f'<a href="{_e(href)}">{text}</a>'
    cls = f' class="g-{_e(value)}"' if key == "mix_group" else ""
    return f'<td data-key="{key}"{attrs} data-value="{_e(raw_value(value))}"{cls}>{text}</td>'


# --- block folder ----------------------------------------------------------------------------------


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
) -> dict:
    """The block's table page, one page per unit and their thumbnails, into ``out_dir`` (built
    under a temporary name, renamed into place when complete), from the block's tables, its FV and
    channel-FV chunk folders and the exemplar folders of its layers."""
    fv, meta = read_table(fv_csv)
    imagenet = read_table(imagenet_csv)[0] if imagenet_csv else None
    weights = meta.get("weights")
    units = block_units(fv, imagenet)
    if not units:
        raise AtlasError(f"{fv_csv} has no channels: nothing to put in the atlas for block {block}")
    fv_pngs = chunk_unit_pngs(fv_dirs)
    channel_pngs = chunk_unit_pngs(channel_fv_dirs)
    grids = layer_unit_pngs(exemplar_dirs)
    tops = read_exemplar_lists(exemplar_dirs)
    px, quality = settings["fv_px"], settings["jpeg_quality"]

    remove_stale_partials(out_dir)
    tmp = partial_dir(out_dir)
    os.makedirs(os.path.join(tmp, "img"))
    missing = []

    def thumb(src: str | None, name: str, size: int, what: str) -> dict | None:
        if src is None or not os.path.exists(src):
            missing.append(what)
            return None
        thumbnail(src, os.path.join(tmp, "img", name), size, quality)
        # relative to the final folder, so the link survives the rename
        return {"src": f"img/{name}", "full": os.path.relpath(src, out_dir)}

    channels = [u["channel"] for u in units]
    row_thumbs = {}
    for i, unit in enumerate(units):
        c = unit["channel"]
        pics = {}
        for kind in KINDS:
            layer = layers[kind]
            pics[("fv", kind)] = thumb(fv_pngs.get((layer, c)), f"{kind}_fv_{c:04d}.jpg", px, f"centre FV {kind} {layer} {c}")
            pics[("top9", kind)] = thumb(grids.get((layer, c)), f"{kind}_top9_{c:04d}.jpg", settings["top9_px"],
                                         f"top-9 {kind} {layer} {c}")
            if kind in settings["channel_fvs"]:
                pics[("chfv", kind)] = thumb(channel_pngs.get((layer, c)), f"{kind}_chfv_{c:04d}.jpg", px, f"channel FV {kind} {layer} {c}")
        row_thumbs[c] = thumb(fv_pngs.get((layers["O"], c)), f"row_{c:04d}.jpg", settings["row_px"], f"row thumbnail {c}")
        prev_c = channels[i - 1] if i > 0 else None
        next_c = channels[i + 1] if i + 1 < len(channels) else None
        with open(os.path.join(tmp, unit_page_name(c)), "w") as f:
            f.write(unit_page(block, unit, layers, pics, tops, prev_c, next_c, weights, settings))
    with open(os.path.join(tmp, "index.html"), "w") as f:
        f.write(block_page(block, units, row_thumbs, layers, weights, meta))
    with open(os.path.join(tmp, "atlas_block.json"), "w") as f:
        json.dump({"block": block, "channels": channels, "layers": layers, "weights": weights, "missing_pictures": missing}, f, indent=1)
    publish_dir(tmp, out_dir, AtlasError(f"{out_dir} already holds atlas pages; delete it (or let snakemake rerun the job) to rebuild"))
    for what in missing:
        log.warning("atlas block %s: no picture for %s (the page shows 'not available')", block, what)
    log.info("atlas block %s: %d unit pages in %s", block, len(units), out_dir)
    return {"block": block, "units": len(units), "missing_pictures": missing}


def unit_page_name(channel: int) -> str:
    return f"unit{channel:04d}.html"


def block_page(block: str, units: list[dict], row_thumbs: dict, layers: dict, weights, meta: dict) -> str:
    head = "".join(
        f'<th data-sort="{key}" data-type="{kind}" tabindex="0" title="sort by {_e(title)}">{_e(title)}</th>'
        for key, title, kind in TABLE_COLUMNS
    )
    rows = []
    for u in units:
        thumb = row_thumbs.get(u["channel"])
        img = f'<img src="{thumb["src"]}" alt="O FV of channel {u["channel"]}" loading="lazy">' if thumb else "—"
        cells = [f'<td class="thumb"><a href="{unit_page_name(u["channel"])}">{img}</a></td>']
        for key, _title, _kind in TABLE_COLUMNS:
            href = unit_page_name(u["channel"]) if key == "channel" else None
            cells.append(_cell(key, u.get(key), href))
        rows.append(
            f'<tr data-channel="{u["channel"]}" data-group="{_e(u.get("mix_group"))}" '
            f'data-pass-all="{raw_value(bool(u.get("pass_all")))}" data-pass-nomix="{raw_value(bool(u.get("pass_nomix")))}">'
            + "".join(cells) + "</tr>"
        )
    group_boxes = "".join(
        f'<label><input type="checkbox" class="group-filter" value="{g}" checked> '
        f'<span class="g-{g}">{g}</span></label> '
        for g in GROUPS
    )
    layer_list = ", ".join(f"{k} = <code>{_e(layers[k])}</code>" for k in KINDS)
    body = (
        f'<nav><a href="../index.html">atlas</a> › block {_e(block)}</nav>\n'
        f"<h1>Block {_e(block)}</h1>\n<p>{layer_list}; {len(units)} channels. "
        f"Click a header to sort (again to reverse); click a channel to open its page.</p>\n"
        f'<div class="controls">{group_boxes}'
        f'<label>scale invariant: <select id="scale-filter">'
        f'<option value="any">any channel</option>'
        f'<option value="pass_all">all criteria (Eqs 2-5)</option>'
        f'<option value="pass_nomix">without mix criterion (Eqs 3-4)</option></select></label> '
        f'<span id="shown-count"></span></div>\n'
        f'<table id="channels" class="channels"><thead><tr><th>O FV</th>{head}</tr></thead>\n'
        f'<tbody>{"".join(rows)}</tbody></table>\n'
        f"{settings_note(meta)}"
    )
    return page(f"resstream atlas — block {block}", body, weights, "../")


def settings_note(meta: dict) -> str:
    keep = {k: meta.get(k) for k in ("fv_hook", "o_relu", "analysis") if k in meta}
    fvs = meta.get("fv_settings") or {}
    if fvs:
        keep["fv_settings"] = fvs
    return f'<details class="settings"><summary>settings of these numbers</summary><pre>{_e(json.dumps(keep, indent=1, default=str))}</pre></details>'


def _figure(pic: dict | None, caption: str, alt: str, cls: str) -> str:
    if pic is None:
        return f'<figure class="{cls} missing"><div class="none">not available</div><figcaption>{caption}</figcaption></figure>'
    return (
        f'<figure class="{cls}"><a href="{_e(pic["full"])}"><img src="{_e(pic["src"])}" alt="{_e(alt)}"></a>'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def unit_page(block, unit, layers, pics, tops, prev_c, next_c, weights, settings) -> str:
    c = unit["channel"]
    nav = [f'<a href="../index.html">atlas</a> › <a href="index.html">block {_e(block)}</a> › channel {c}']
    links = []
    links.append(f'<a id="prev" rel="prev" href="{unit_page_name(prev_c)}">← channel {prev_c}</a>' if prev_c is not None else '<span class="off">← first</span>')
    links.append(f'<a id="next" rel="next" href="{unit_page_name(next_c)}">channel {next_c} →</a>' if next_c is not None else '<span class="off">last →</span>')
    cols = []
    for kind in KINDS:
        layer = layers[kind]
        status = unit.get(f"fv_status_{kind}", "")
        parts = [_figure(pics[("fv", kind)], f"centre FV · {_e(layer)} · {_e(status)}", f"centre FV of {kind} {layer} channel {c}", "fv")]
        if kind in settings["channel_fvs"]:
            parts.append(_figure(pics.get(("chfv", kind)), f"channel FV · {_e(layer)}", f"channel FV of {kind} {layer} channel {c}", "fv"))
        else:
            parts.append('<figure class="fv missing"><div class="none">channel FV not rendered<br>'
                         f'(atlas.channel_fvs lacks {kind})</div><figcaption>channel FV · {_e(layer)}</figcaption></figure>')
        parts.append(_figure(pics[("top9", kind)], f"top-9 dataset images · {_e(layer)}", f"top-9 images of {kind} {layer} channel {c}", "top9"))
        listing = tops.get((layer, c), [])
        if listing:
            items = "".join(f"<li>{_e(p)} <span class=num>{a:.4g}</span></li>" for p, a in listing)
            parts.append(f"<details><summary>the 9 images</summary><ol>{items}</ol></details>")
        cols.append(f'<section class="kind" id="kind-{kind}"><h2>{_e(KIND_TITLES[kind])}</h2>{"".join(parts)}</section>')
    number_rows = []
    for key, meaning in UNIT_NUMBERS:
        fv_v = unit.get(key)
        im_v = unit.get(f"imagenet_{key}")
        number_rows.append(
            f'<tr><th scope="row">{_e(key)}</th><td class="meaning">{_e(meaning)}</td>'
            + _cell(key, fv_v, attrs=' data-stimulus="fv"')
            + _cell(key, im_v, attrs=' data-stimulus="imagenet"')
            + "</tr>"
        )
    group = unit.get("mix_group")
    key_numbers = " · ".join(f"{k} <b>{_e(fmt_value(unit.get(k)))}</b>" for k in ("M", "m", "n", "SM")) + (
        f" · scale invariant: <b>{_e(fmt_value(unit.get('pass_all')))}</b> (all criteria), "
        f"<b>{_e(fmt_value(unit.get('pass_nomix')))}</b> (without mix) · status <b>{_e(unit.get('status'))}</b> · FV stimuli"
    )
    body = (
        f'<nav>{nav[0]}</nav>\n<nav class="prevnext">{" ".join(links)}</nav>\n'
        f'<h1>Block {_e(block)} · channel {c} <span class="chip g-{_e(group)}">{_e(group)}</span></h1>\n'
        f'<p class="key-numbers">{key_numbers}</p>\n'
        f'<div class="kinds">{"".join(cols)}</div>\n'
        f'<h2>Numbers</h2><table id="numbers" class="numbers"><thead><tr><th>value</th><th>meaning</th>'
        f"<th>FV stimuli</th><th>ImageNet top-9</th></tr></thead><tbody>{''.join(number_rows)}</tbody></table>\n"
    )
    return page(f"resstream atlas — block {block} channel {c}", body, weights, "../")


# --- index -----------------------------------------------------------------------------------------


def write_index(blocks: list[str], fv_csvs: list[str], imagenet_csvs: list[str], out_html: str, out_css: str, out_js: str,
                scorecard_csv: str | None = None) -> dict:
    """The atlas index: one card per block with its M histogram, spectrum and scale-invariance
    counts, then the reproduction scorecard (``paper_check.csv``) if given; plus the shared
    stylesheet and script."""
    cards = []
    weights = None
    summary = {}
    for block, fv_csv, im_csv in zip(blocks, fv_csvs, imagenet_csvs):
        fv, meta = read_table(fv_csv)
        imagenet = read_table(im_csv)[0] if im_csv else None
        weights = weights or meta.get("weights")
        groups = fv["mix_group"].astype(str)
        counts = {g: int((groups == g).sum()) for g in GROUPS}
        n = len(fv)
        inv = {"all": int(fv["pass_all"].sum()), "nomix": int(fv["pass_nomix"].sum())}
        if imagenet is not None:
            inv["imagenet_all"] = int(imagenet["pass_all"].sum())
        bad = int(sum(1 for s in fv["status"].astype(str) if s != "ok"))
        # the groups of the table were made with the analysis' factor: colour the bars with it too
        factor = float((meta.get("analysis") or {}).get("mix_factor", 1.5))
        summary[block] = {"channels": n, "groups": counts, "scale_invariant": inv, "not_ok": bad}
        chips = " ".join(f'<span class="chip g-{g}" data-group="{g}">{g} {counts[g]}</span>' for g in GROUPS if counts[g] or g != metrics.NO_GROUP)
        im_line = f"; ImageNet top-9, all criteria: <b data-key=\"imagenet_all\">{inv['imagenet_all']}</b>" if "imagenet_all" in inv else ""
        cards.append(
            f'<section class="card" data-block="{_e(block)}"><h2><a href="{_e(block)}/index.html">Block {_e(block)}</a></h2>'
            f"<p>{n} channels · {', '.join(f'{k} <code>{_e(v)}</code>' for k, v in (meta.get('layers') or {}).items())}</p>"
            f"{mix_histogram_svg(fv['M'].astype(float), factor)}"
            f'<p class="rule">overwrite M ≤ 1/{factor:g}, mix, skip M ≥ {factor:g}</p><p>{chips}</p>'
            f'<p>scale invariant (FV): all criteria <b data-key="all">{inv["all"]}</b>, without mix '
            f'<b data-key="nomix">{inv["nomix"]}</b>{im_line}</p>'
            + (f'<p class="warn">{bad} channels with a status other than ok</p>' if bad else "")
            + "</section>"
        )
    body = (
        "<h1>resstream unit atlas</h1>\n"
        "<p>Every studied unit of the residual stream: centre-neuron feature visualizations of the block "
        "input I, branch B and output O, channel FVs, top-9 dataset images and the mix ratio M "
        "(skip / mix / overwrite) and scale-invariance numbers. Histograms: M clamped to 5, "
        "coloured by the spectrum group of the bin.</p>\n"
        f'<div class="cards">{"".join(cards)}</div>'
    )
    if scorecard_csv:
        body += "\n" + scorecard.html_fragment(*read_table(scorecard_csv))
    write_text_atomic(out_css, ATLAS_CSS + scorecard.SCORECARD_CSS)
    write_text_atomic(out_js, ATLAS_JS)
    write_text_atomic(out_html, page("resstream unit atlas", body, weights, ""))
    return summary


ATLAS_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5em 2em; color: #222; }
.banner { background: #b00020; color: #fff; font-weight: bold; padding: .5em 1em; margin: 0 -1.5em; text-align: center; }
.banner.custom { background: #b35900; }
.weights { font-size: 12px; color: #555; word-break: break-all; }
footer { margin-top: 2em; border-top: 1px solid #ddd; }
nav { margin: .5em 0; } .prevnext a, .prevnext span { margin-right: 1.5em; } .off { color: #aaa; }
.cards { display: flex; flex-wrap: wrap; gap: 1em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .5em 1em; width: 300px; }
.chip { display: inline-block; border-radius: 3px; padding: 0 .4em; color: #fff; font-size: 12px; }
.g-overwrite { color: #d62728; } .g-mix { color: #2ca02c; } .g-skip { color: #1f77b4; } .g-none { color: #777; }
.chip.g-overwrite { background: #d62728; color: #fff; } .chip.g-mix { background: #2ca02c; color: #fff; }
.chip.g-skip { background: #1f77b4; color: #fff; } .chip.g-none { background: #999; color: #fff; }
.warn { color: #b06000; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: right; }
th[data-sort] { cursor: pointer; user-select: none; white-space: nowrap; }
th[data-sort].asc::after { content: " ▲"; } th[data-sort].desc::after { content: " ▼"; }
td.thumb img { width: 48px; height: 48px; display: block; }
.controls { margin: .5em 0 1em; } .controls label { margin-right: 1em; }
.kinds { display: flex; flex-wrap: wrap; gap: 1.5em; }
.kind figure { margin: 0 0 .8em; } .kind figcaption { font-size: 12px; color: #555; }
figure.fv img, figure.fv .none { width: 160px; height: 160px; }
figure.top9 img, figure.top9 .none { width: 240px; height: 240px; }
.none { background: #f3f3f3; color: #888; display: flex; align-items: center; justify-content: center; text-align: center; font-size: 12px; }
table.numbers td.meaning { text-align: left; color: #555; }
.settings pre { font-size: 11px; }
"""

ATLAS_JS = r"""
// Sorting and filtering of a block's channel table (rows carry data-value per cell).
(function () {
  const table = document.getElementById("channels");
  if (!table) return;
  const body = table.tBodies[0];
  const heads = Array.from(table.tHead.rows[0].cells);
  function cellValue(row, key, type) {
    const cell = row.querySelector('td[data-key="' + key + '"]');
    const raw = cell ? cell.dataset.value : "";
    if (type === "num") { const x = parseFloat(raw); return isNaN(x) ? null : x; }
    if (type === "bool") return raw === "true" ? 1 : 0;
    return raw;
  }
  function sortBy(th) {
    const key = th.dataset.sort, type = th.dataset.type;
    const dir = th.classList.contains("asc") ? -1 : 1;  // first click ascending, then toggles
    heads.forEach(h => h.classList.remove("asc", "desc"));
    th.classList.add(dir === 1 ? "asc" : "desc");
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = cellValue(a, key, type), y = cellValue(b, key, type);
      if (x === null && y === null) return cellValue(a, "channel", "num") - cellValue(b, "channel", "num");
      if (x === null) return 1;  // missing values last, whatever the direction
      if (y === null) return -1;
      if (x < y) return -dir;
      if (x > y) return dir;
      return cellValue(a, "channel", "num") - cellValue(b, "channel", "num");
    });
    rows.forEach(r => body.appendChild(r));
  }
  heads.forEach(th => {
    if (!th.dataset.sort) return;
    th.addEventListener("click", () => sortBy(th));
    th.addEventListener("keydown", e => { if (e.key === "Enter") sortBy(th); });
  });
  const boxes = Array.from(document.querySelectorAll(".group-filter"));
  const scale = document.getElementById("scale-filter");
  const count = document.getElementById("shown-count");
  function applyFilter() {
    const groups = new Set(boxes.filter(b => b.checked).map(b => b.value));
    const need = scale ? scale.value : "any";
    let shown = 0;
    Array.from(body.rows).forEach(r => {
      let ok = groups.has(r.dataset.group);
      if (need === "pass_all") ok = ok && r.dataset.passAll === "true";
      if (need === "pass_nomix") ok = ok && r.dataset.passNomix === "true";
      r.hidden = !ok;
      if (ok) shown += 1;
    });
    if (count) count.textContent = shown + " of " + body.rows.length + " channels shown";
  }
  boxes.forEach(b => b.addEventListener("change", applyFilter));
  if (scale) scale.addEventListener("change", applyFilter);
  applyFilter();
})();
"""
