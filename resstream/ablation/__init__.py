"""Causal lesions (rule file: rules/ablation.smk): channels of a residual block held at a constant
(zero or their dataset mean) at the block's sum, its branch or its skip path, and top-1 accuracy and
logit KL of the lesioned network at several image scales, against size-matched random lesions.
"""

from resstream.base.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__, lesion="Lesion lesioned", evaluate="evaluate_lesions", stage="run_ablation"
)
