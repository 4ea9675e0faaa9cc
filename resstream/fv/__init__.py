"""Feature visualizations (rule file: rules/fv.smk): centre-neuron FVs of many units of one layer
optimised together, each as if alone, as Lucent's render_vis makes them; one job per chunk.
"""

from resstream.base.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    render="render_units",
    job="run_fv_chunk",
    settings="FVSettings",
    png_files="check_fv_png",
    fv_file="read_fv_file",
)
