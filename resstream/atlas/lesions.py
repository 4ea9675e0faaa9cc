"""The lesion section of a block's atlas page, when the ablation stage lesioned the block: per
lesioned set, kind, path and scale its top-1 accuracy against the size-matched random lesions'
(mean ± standard error over the kept trials, and the ratio the stage's figure draws), the block's
rows of the mix-class causal table, and a link to the figure.

Read from the stage's own tables (``ablation/lesion_ratios.csv``, ``ablation/mix_classes.csv``),
not computed again here; off (no section) when the stage did not run or did not lesion the block.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from resstream.base.tables import read_table

# Columns of the section's two tables: (CSV column, header).
RATIO_COLUMNS = (
    ("set", "set"),
    ("kind", "kind"),
    ("path", "path"),
    ("scale", "scale"),
    ("fill", "fill"),
    ("accuracy", "accuracy (%)"),
    ("random_accuracy", "random sets (%)"),
    ("random_se", "± s.e."),
    ("ratio", "ratio to random"),
    ("se", "± s.e."),
    ("trials", "kept trials"),
    ("n", "images"),
)
MIX_COLUMNS = (
    ("mix_class", "mix class"),
    ("channels", "channels"),
    ("path", "path"),
    ("accuracy_drop", "accuracy drop"),
    ("accuracy_drop_random", "random drop"),
    ("kl", "KL"),
    ("kl_random", "random KL"),
    ("kl_excess", "KL excess"),
    ("agrees", "agrees with the paper"),
)


@dataclass(frozen=True)
class LesionSection:
    ratios: list[dict]  # the block's rows of lesion_ratios.csv
    mix: list[dict]  # the block's rows of mix_classes.csv (none unless mix classes were lesioned)
    figure: str  # the stage's figure, relative to the block's page


def _block_rows(csv: str, block: str) -> list[dict]:
    table = read_table(csv)[0]
    return table[table["block"] == block].to_dict("records") if len(table) else []


def read_lesion_section(block: str, ratios: str, mix: str, figure: str, page_dir: str) -> LesionSection | None:
    """The block's section from the stage's ``ratios`` (lesion_ratios.csv), ``mix``
    (mix_classes.csv) and ``figure`` (ablation.png), or None when the stage lesioned other blocks
    only.  ``page_dir``: the block's published folder (the figure link is relative to it)."""
    rows = _block_rows(ratios, block)
    if not rows:
        return None
    return LesionSection(
        ratios=rows, mix=_block_rows(mix, block), figure=os.path.relpath(figure, page_dir).replace(os.sep, "/")
    )
