"""What the atlas pages show: the block's three roles, the spectrum groups and their colours, the
columns of a block's table, the numbers of a unit page, the weights banners; and how a table value
is printed (:func:`fmt_value`) and kept for the browser (:func:`raw_value`)."""

from __future__ import annotations

import math

import numpy as np

from resstream.analysis import metrics

# The block's roles in page order: input I, branch B, output O (resstream.model.blocks.ROLES; not
# imported from there, so that an edit of the model code does not rerun the atlas jobs).
ROLES = ("I", "B", "O")
ROLE_TITLES = {"I": "I (block input)", "B": "B (block branch, bn2)", "O": "O (block output)"}
GROUPS = (metrics.OVERWRITE, metrics.MIX, metrics.SKIP, metrics.NO_GROUP)
GROUP_COLORS = {
    metrics.OVERWRITE: "#d62728",
    metrics.MIX: "#2ca02c",
    metrics.SKIP: "#1f77b4",
    metrics.NO_GROUP: "#999999",
}
RANDOM_BANNER = "RANDOM WEIGHTS — not pretrained: these pictures and numbers say nothing about the trained network"
CUSTOM_BANNER = "CUSTOM CHECKPOINT — not torchvision's weights (model.checkpoint: any); its file sha256 is below"
WEIGHTS_KEYS = ("source", "state_dict_sha256", "file_sha256")  # printed after the weights' label

# Columns of the block table: (CSV column, header, value type); the type (num | text | bool) tells
# the page's script how to sort the column.
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
KEY_NUMBERS = ("M", "m", "n", "SM")  # the line under a unit page's title


def unit_page_name(channel: int) -> str:
    return f"unit{channel:04d}.html"


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
