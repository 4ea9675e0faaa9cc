"""The dataset pass (rule file: rules/activations.smk): the centre activation of every studied unit
for every image, in one HDF5 file with each unit's top-k images, and the exemplar grids drawn from it.
"""

from resstream.lazy_exports import lazy_exports

ENTRY_POINTS = {
    "extract_activations": "stream",
    "open_activations": "store",
    "read_layer": "store",
    "write_exemplar_grids": "exemplars",
}
__all__ = sorted(ENTRY_POINTS)
__getattr__, __dir__ = lazy_exports(__name__, ENTRY_POINTS)
