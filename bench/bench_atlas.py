"""Unit atlas at full size: one block of 512 channels (as resnet18's 4.0 / 4.1), its pages built
and opened in headless Chromium from the file system.

Pictures are realistic in size and content but few: 16 top-9 grids (3x3 of 224-px sample images,
680 px like the activations stage writes) and 16 FV-like PNGs (224 px), linked under every
(layer, channel) name, so the atlas decodes and thumbnails one file per picture as in a real run.
Tables: the metric table of random raw measurements (every column the stage writes).

Prints: seconds and bytes per unit (pages + thumbnails) against the full-size PNGs a page would
otherwise load, the projection for the paper's 4,672 units, and in Chromium the block page's load
time, a sort by M and a filter, and a unit page's load time.

    .venv/bin/python bench/bench_atlas.py [--channels 512] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from resstream.analysis import metrics  # noqa: E402
from resstream.analysis.summary import TABLE_SETTINGS, build_summary, metric_table_csv, write_table  # noqa: E402
from resstream.atlas import write as atlas  # noqa: E402
from resstream.workflow.config import validate_config  # noqa: E402

LAYERS = {"I": "layer4.0.prerelu_out", "B": "layer4.1.bn2", "O": "layer4.1.prerelu_out"}
PAPER_UNITS = 4672
SETTINGS = {"channel_fvs": ["O"], "fv_px": 160, "top9_px": 240, "row_px": 48, "jpeg_quality": 85}
ANALYSIS = {k: v for k, v in validate_config({})["analysis"].items() if k in TABLE_SETTINGS}  # the schema's defaults
WEIGHTS = {
    "arch": "resnet18",
    "source": "random:0",
    "kind": "random",
    "weights_source": "random",
    "label": "resnet18 RANDOM WEIGHTS (random:0, not pretrained) [benchmark tables]",
}


def random_table(n: int, rng: np.random.Generator) -> pd.DataFrame:
    raw = pd.DataFrame({c: rng.normal(1.0, 0.5, n) for c in metrics.RAW_COLUMNS})
    raw["block"], raw["channel"], raw["stimulus"] = "4.1", np.arange(n), "fv"
    for col in raw.columns:
        if col.endswith("status"):
            raw[col] = "ok"
    return metrics.metric_table(raw, **ANALYSIS)


def picture_pool(sample: Path, dest: Path, rng) -> tuple[list[Path], list[Path]]:
    dest.mkdir(parents=True)
    files = sorted(p for p in sample.rglob("*") if p.suffix.lower() in (".jpeg", ".jpg", ".png"))[:144]
    if len(files) < 144:
        sys.exit(f"need 144 images under {sample}")
    tiles = [np.asarray(Image.open(f).convert("RGB").resize((224, 224))) for f in files]
    grids, fvs = [], []
    for k in range(16):
        t = tiles[9 * k : 9 * k + 9]
        grid = np.concatenate([np.concatenate(t[r * 3 : r * 3 + 3], axis=1) for r in range(3)], axis=0)
        grid = np.pad(grid, ((4, 4), (4, 4), (0, 0)), constant_values=255)  # 680 px as the stage's grids
        grids.append(dest / f"grid{k}.png")
        Image.fromarray(grid).save(grids[-1])
        small = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        fv = np.asarray(Image.fromarray(small).resize((224, 224), Image.BICUBIC))
        fvs.append(dest / f"fv{k}.png")
        Image.fromarray(fv).save(fvs[-1])
    return grids, fvs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=512)
    ap.add_argument(
        "--sample",
        default=str(REPO / "data" / "imagenet-sample"),
        help="image folder (default: the demo sample, resstream fetch-sample puts it there)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the generated atlas (its folder is printed)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    root = Path(tempfile.mkdtemp(prefix="bench-atlas-"))
    grids, fvs = picture_pool(Path(args.sample), root / "pool", rng)
    n = args.channels
    fv_dirs, chfv_dirs = [], []
    for kind, layer in LAYERS.items():
        d = root / "fv" / layer / "c0000-0511"
        d.mkdir(parents=True)
        fv_dirs.append(str(d))
        ex = root / "exemplars" / layer
        ex.mkdir(parents=True, exist_ok=True)
        for c in range(n):
            (d / f"unit{c:04d}.png").symlink_to(fvs[(c + len(kind)) % 16])
            (ex / f"unit{c:04d}.png").symlink_to(grids[(c * 7 + len(kind)) % 16])
    ch = root / "channel_fv" / LAYERS["O"] / "c0000-0511"
    ch.mkdir(parents=True)
    chfv_dirs.append(str(ch))
    for c in range(n):
        (ch / f"unit{c:04d}.png").symlink_to(fvs[(c + 5) % 16])
    meta = {"weights": WEIGHTS, "block": "4.1", "layers": LAYERS, "analysis": ANALYSIS}  # as derive_table records it
    tables = {}
    for stim in ("fv", "imagenet"):
        tables[stim] = metric_table_csv(str(root), "4.1", stim)
        write_table(random_table(n, rng), tables[stim], meta)

    out = root / "atlas"
    build_summary({"4.1": tables["fv"]}, {"4.1": tables["imagenet"]}, str(root / "summary.json"), fig34_blocks=[])
    t0 = time.perf_counter()
    atlas.write_block(
        "4.1",
        tables["fv"],
        tables["imagenet"],
        LAYERS,
        fv_dirs,
        chfv_dirs,
        [str(root / "exemplars" / layer) for layer in LAYERS.values()],
        str(out / "4.1"),
        SETTINGS,
    )
    atlas.write_index(
        ["4.1"],
        [tables["fv"]],
        str(root / "summary.json"),
        str(out / "index.html"),
        str(out / "atlas.css"),
        str(out / "atlas.js"),
    )
    seconds = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    unit_page = out / "4.1" / "unit0000.html"
    unit_bytes = (
        unit_page.stat().st_size
        + sum((out / "4.1" / "img" / f"{k}_{what}_0000.jpg").stat().st_size for k in "IBO" for what in ("fv", "top9"))
        + (out / "4.1" / "img" / "O_chfv_0000.jpg").stat().st_size
    )
    full_bytes = sum(
        os.path.getsize(os.path.realpath(p))
        for p in [Path(d) / "unit0000.png" for d in fv_dirs + chfv_dirs]
        + [root / "exemplars" / layer / "unit0000.png" for layer in LAYERS.values()]
    )
    block_page = (out / "4.1" / "index.html").stat().st_size
    print(
        f"write_block + index, {n} units: {seconds:.1f} s ({seconds / n * 1000:.0f} ms/unit); atlas {size / 1e6:.1f} MB "
        f"({size / n / 1e3:.0f} kB/unit)"
    )
    print(
        f"projected for {PAPER_UNITS} units: {seconds / n * PAPER_UNITS / 60:.1f} min of one core (7 block jobs in parallel), "
        f"{size / n * PAPER_UNITS / 1e6:.0f} MB"
    )
    print(
        f"one unit page loads {unit_bytes / 1e3:.0f} kB (page + 7 thumbnails) instead of {full_bytes / 1e6:.2f} MB of full PNGs "
        f"(x{full_bytes / unit_bytes:.0f} less); the block page is {block_page / 1e3:.0f} kB + {n} lazy 48-px thumbnails"
    )

    from helpers.browser import file_url, start_chromium, stop_chromium, wait_for_images

    browser = start_chromium()
    try:
        timing = "const t = performance.getEntriesByType('navigation')[0]; return [t.domContentLoadedEventEnd, t.loadEventEnd];"
        browser.get(file_url(out / "4.1" / "index.html"))
        dom, load = browser.execute_script(timing)
        sort_ms = browser.execute_script(
            "const t0 = performance.now(); document.querySelector('th[data-sort=\"M\"]').click(); return performance.now() - t0;"
        )
        filter_ms = browser.execute_script(
            "const s = document.getElementById('scale-filter'); const t0 = performance.now(); s.value = 'pass_all';"
            "s.dispatchEvent(new Event('change')); return performance.now() - t0;"
        )
        shown = browser.find_element("id", "shown-count").text
        print(
            f"chromium, block page of {n} rows: DOM ready {dom:.0f} ms, load {load:.0f} ms; sort by M {sort_ms:.0f} ms; "
            f"filter to scale invariant {filter_ms:.0f} ms ({shown})"
        )
        browser.get(file_url(unit_page))
        images = wait_for_images(browser)
        dom, load = browser.execute_script(timing)
        print(
            f"chromium, unit page: load {load:.0f} ms, {len(images)} images, all decoded: "
            f"{all(i['width'] > 0 for i in images)}"
        )
    finally:
        stop_chromium(browser)
        if args.keep:
            print(f"(files under {root})")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
