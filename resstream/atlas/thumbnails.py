"""The JPEG thumbnails of a block folder: each picture sized for its place on the page (the
full-size PNG stays where it is and the page links to it); pictures that do not exist are recorded,
and the page says 'not available'."""

from __future__ import annotations

import os

from PIL import Image

from resstream.atlas.content import ROLES
from resstream.atlas.load import Pictures


def thumbnail(src: str, dst: str, px: int, quality: int) -> None:
    """A JPEG no larger than px x px (aspect kept), for display; the full PNG stays where it is."""
    with Image.open(src) as img:
        img = img.convert("RGB")
        img.thumbnail((px, px), Image.Resampling.LANCZOS)
        img.save(dst, "JPEG", quality=quality, optimize=True)


class Thumbnails:
    """Writes the thumbnails of a block folder under construction (``building``, published later as
    ``final``) into its ``img/``; ``missing`` names the pictures that were not there."""

    def __init__(self, building: str, final: str, quality: int):
        self.img_dir = os.path.join(building, "img")
        self.final = final
        self.quality = quality
        self.missing: list[str] = []
        os.makedirs(self.img_dir)

    def make(self, src: str | None, name: str, px: int, what: str) -> dict | None:
        """``{"src": thumbnail, "full": the PNG}``, both relative to the block folder, or None."""
        if src is None or not os.path.exists(src):
            self.missing.append(what)
            return None
        thumbnail(src, os.path.join(self.img_dir, name), px, self.quality)
        # relative to the final folder, so the link survives the rename
        return {"src": f"img/{name}", "full": os.path.relpath(src, self.final)}


def unit_thumbnails(thumbs: Thumbnails, pictures: Pictures, layers: dict, channel: int, settings: dict) -> dict:
    """A unit page's pictures: ``{role: {"fv", "top9"[, "channel_fv"]: thumbnail or None}}``; the
    channel FV only for the roles ``settings["channel_fvs"]`` names."""
    c, px = channel, settings["fv_px"]
    out = {}
    for role in ROLES:
        layer = layers[role]
        pics = {
            "fv": thumbs.make(
                pictures.centre_fvs.get((layer, c)), f"{role}_fv_{c:04d}.jpg", px, f"centre FV {role} {layer} {c}"
            ),
            "top9": thumbs.make(
                pictures.top9_grids.get((layer, c)),
                f"{role}_top9_{c:04d}.jpg",
                settings["top9_px"],
                f"top-9 {role} {layer} {c}",
            ),
        }
        if role in settings["channel_fvs"]:
            pics["channel_fv"] = thumbs.make(
                pictures.channel_fvs.get((layer, c)), f"{role}_chfv_{c:04d}.jpg", px, f"channel FV {role} {layer} {c}"
            )
        out[role] = pics
    return out


def row_thumbnail(thumbs: Thumbnails, pictures: Pictures, layers: dict, channel: int, settings: dict) -> dict | None:
    """The block table's picture of a channel: O's centre FV."""
    return thumbs.make(
        pictures.centre_fvs.get((layers["O"], channel)),
        f"row_{channel:04d}.jpg",
        settings["row_px"],
        f"row thumbnail {channel}",
    )
