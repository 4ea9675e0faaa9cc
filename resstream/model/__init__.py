"""The network under study (rule file: rules/model.smk): torchvision models and their weights, the
residual families and their block adapters, the residual blocks with their I, B and O tensors,
one-pass taps, receptive fields, the model card.
"""

from resstream.lazy_exports import lazy_exports

ENTRY_POINTS = {
    "load_model": "weights",
    "model_param": "weights",
    "model_blocks": "blocks",
    "parse_layer": "blocks",
    "block_taps": "taps",
    "check_arch": "families",
    "arch_family": "families",
    "write_model_card": "card",
    "resolve_device": "device",
}
__all__ = sorted(ENTRY_POINTS)
__getattr__, __dir__ = lazy_exports(__name__, ENTRY_POINTS)
