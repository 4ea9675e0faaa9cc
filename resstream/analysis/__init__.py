"""Measurements, metrics and figures (rule file: rules/analysis.smk): a block's I, B and O measured on
its FVs and top-9 images, the paper's metrics as pure functions, tables, Figs 1-8, the scorecard.
"""

from resstream.lazy_exports import lazy_exports

ENTRY_POINTS = {
    "run_block_measurement": "measure",
    "derive_table": "summary",
    "build_summary": "summary",
    "make_figure": "figures",
    "write_scorecard": "scorecard",
}
__all__ = sorted(ENTRY_POINTS)
__getattr__, __dir__ = lazy_exports(__name__, ENTRY_POINTS)
