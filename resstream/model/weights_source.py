"""What an output can honestly say of its weights' origin, ``weights_source``: ``torchvision``,
``timm``, ``custom`` or ``random``.  Whether a checkpoint of one's own was trained, and how, the tool cannot
know, so no output claims "pretrained".  Free of imports: the figure, summary, scorecard, atlas and
comparison jobs read it without the weights loader in their code fingerprint.
"""

from __future__ import annotations

# An identity's kind, and what it says of the weights' origin (the ``weights_source`` of every output).
# "timm": a timm model's published weights for its tag (Hugging Face hub), loaded through timm.
KIND_SOURCES = {
    "pretrained": "torchvision",
    "checkpoint": "torchvision",
    "timm": "timm",
    "custom": "custom",
    "random": "random",
}
WEIGHTS_SOURCES = ("torchvision", "timm", "custom", "random")


def weights_source(weights: dict | None) -> str:
    """The ``weights_source`` of a recorded weights identity (a dict as outputs hold it): the field
    itself, else (outputs written before it existed) what its ``kind`` or ``pretrained`` says;
    ``random`` when nothing is recorded, so unknown weights are never shown as trained."""
    weights = weights or {}
    if weights.get("weights_source") in WEIGHTS_SOURCES:
        return weights["weights_source"]
    if weights.get("kind") in KIND_SOURCES:
        return KIND_SOURCES[weights["kind"]]
    return "torchvision" if weights.get("pretrained") else "random"


def combined_weights_source(sources) -> str:
    """One source for several runs' weights (a comparison): ``random`` if any is, else ``custom``
    if any is, else ``timm`` if any is, else ``torchvision``."""
    sources = set(sources)
    return next((s for s in ("random", "custom", "timm") if s in sources), "torchvision")
