"""Checks of finished files a later stage reads, for errors that name the file and the fix.

``check_fv_png`` is meant for the measurement stage: ``resstream.analysis.measure.load_fv_png`` (and
``fv_png_and_status``) open whatever PNG sits in a chunk folder; a file replaced by an image of another
size is then measured at the wrong centre neuron (all of one size) or fails inside ``torch.stack``
with a message that names no file (mixed sizes).
"""

from __future__ import annotations

import os

from PIL import Image, UnidentifiedImageError

from resstream.base.errors import UserError

IMAGE_SIZE = 224  # resstream.fv.render.IMAGE_SIZE (not imported: it loads lucent)


class FVFileError(UserError, ValueError):
    """A saved FV file that is not what the FV stage wrote."""


def check_fv_png(path: str, size: int = IMAGE_SIZE) -> None:
    """Raise :class:`FVFileError` unless ``path`` is a ``size`` x ``size`` 8-bit RGB PNG, as the
    FV stage writes every ``unit{c:04d}.png``."""
    chunk = os.path.dirname(path) or "."
    fix = (
        f"Fix: delete the chunk folder {chunk} and rerun snakemake (it redoes that chunk), "
        f"or restore the file from the chunk's fv.h5 (dataset 'image')."
    )
    try:
        with Image.open(path) as img:
            fmt, mode, (w, h) = img.format, img.mode, img.size
            img.verify()
    except FileNotFoundError:
        raise FVFileError(f"FV image {path} is missing. {fix}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise FVFileError(f"FV image {path} cannot be read ({exc}). {fix}") from None
    if fmt != "PNG" or mode != "RGB" or (w, h) != (size, size):
        raise FVFileError(
            f"FV image {path} is a {w}x{h} {mode} {fmt}, not the {size}x{size} RGB PNG the FV stage "
            f"writes: it was replaced or damaged. {fix}"
        )
