"""resstream: the residual-stream study of ResNets (Longon, arXiv 2407.05340) as a library.

Modules mirror the pipeline: ``weights`` (model + weights identity), ``blocks`` and ``taps``
(block tensors I, B, O), ``data`` (image folders), ``config`` (validated config and study plan),
``card`` (model card).
"""

__version__ = "0.1.0"
