"""The network under study (rule file: rules/model.smk): torchvision models and their weights, the
residual families, their blocks' I, B and O (found in a network by walk, recorded per arch by
structure), one-pass taps, receptive fields, the model card.
"""

from resstream.base.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    weights="load_model model_param",
    walk="model_blocks",
    blocks="parse_layer",
    taps="block_taps",
    families="arch_family",
    structure="check_arch",
    card="write_model_card",
    device="resolve_device",
)
