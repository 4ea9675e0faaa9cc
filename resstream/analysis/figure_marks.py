"""What every figure carries: its title with the weights, a large "RANDOM WEIGHTS — not pretrained"
mark whenever the weights are random (``weights_source``), so a demo figure cannot pass for a
result, and a "CUSTOM CHECKPOINT — not torchvision's weights" mark when they come from a
checkpoint of one's own (``model.checkpoint: any``); saving as PNG and PDF; the blank panel.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from resstream.model.weights_source import weights_source  # noqa: E402

RANDOM_MARK = "RANDOM WEIGHTS — not pretrained"
CUSTOM_MARK = "CUSTOM CHECKPOINT — not torchvision's weights"


def weights_label(weights: dict | None) -> str:
    if not weights:
        return "weights unknown"
    return weights.get("label") or f"{weights.get('arch')} {weights.get('source')}"


def is_trained(weights: dict | None) -> bool:
    """Weights that are not random (torchvision's or a checkpoint of one's own)."""
    return weights_source(weights) != "random"


def is_custom(weights: dict | None) -> bool:
    """Weights from a checkpoint of one's own (``model.checkpoint: any``), not torchvision's."""
    return bool(weights and weights.get("kind") == "custom")


def finish(fig, title: str, weights: dict | None, png: str, pdf: str) -> list[str]:
    """Title with the weights, the random-weights mark where due, save PNG + PDF; return the texts.
    The PNG is in 256 adaptive colours: a third of the bytes of full colour for the picture grids
    (the report embeds every PNG), no visible change at this size; the PDF keeps full colour."""
    fig.suptitle(f"{title}\n{weights_label(weights)}", fontsize=11)
    if not is_trained(weights):
        fig.text(
            0.5,
            0.5,
            RANDOM_MARK,
            color="red",
            alpha=0.35,
            fontsize=28,
            fontweight="bold",
            ha="center",
            va="center",
            rotation=20,
            transform=fig.transFigure,
            zorder=1000,
        )
        fig.text(0.01, 0.005, RANDOM_MARK, color="red", fontsize=10, fontweight="bold", ha="left", va="bottom")
    if is_custom(weights):
        digest = weights.get("file_sha256")
        fig.text(
            0.99,
            0.005,
            CUSTOM_MARK + (f" (file sha256 {digest[:12]})" if digest else ""),
            color="darkorange",
            fontsize=10,
            fontweight="bold",
            ha="right",
            va="bottom",
        )
    texts = [t.get_text() for t in fig.texts]
    texts += [ax.get_title() for ax in fig.axes]
    for path in (png, pdf):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(png, dpi=110)
    fig.savefig(pdf)
    plt.close(fig)
    with Image.open(png) as full:
        reduced = full.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    reduced.save(png, optimize=True)
    return texts


def empty_panel(ax, text: str):
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, wrap=True, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def figure_number(x) -> str:
    """A number as the figures print it: three decimals, "n/a" for none or NaN, no "-0.000"."""
    if x is None or not np.isfinite(x):
        return "n/a"
    text = f"{x:.3f}"
    return "0.000" if text == "-0.000" else text
