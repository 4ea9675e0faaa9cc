"""Feature visualizations (rule file: rules/fv.smk): centre-neuron FVs of many units of one layer
optimised together, each as if alone, as Lucent's render_vis makes them; one job per chunk.
"""

from resstream.lazy_exports import lazy_exports

ENTRY_POINTS = {
    "render_units": "render",
    "run_fv_chunk": "job",
    "FVSettings": "settings",
    "check_fv_png": "png_files",
}
__all__ = sorted(ENTRY_POINTS)
__getattr__, __dir__ = lazy_exports(__name__, ENTRY_POINTS)
