"""The network under study (rule file: rules/model.smk): torchvision models and their weights, the
residual families and their block adapters, the residual blocks with their I, B and O tensors,
one-pass taps, receptive fields, the model card.
"""

from resstream.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__, weights="load_model model_param", blocks="model_blocks parse_layer", taps="block_taps",
    families="check_arch arch_family", card="write_model_card", device="resolve_device"
)
