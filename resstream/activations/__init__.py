"""The dataset pass (rule file: rules/activations.smk): the centre activation of every studied unit
for every image, in one HDF5 file with each unit's top-k images, and the exemplar grids drawn from it.
"""

from resstream.base.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__, stream="extract_activations", store="open_activations read_layer", exemplars="write_exemplar_grids"
)
