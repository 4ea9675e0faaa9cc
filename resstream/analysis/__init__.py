"""Measurements, metrics and figures (rule file: rules/analysis.smk): a block's I, B and O measured on
its FVs and top-9 images, the paper's metrics as pure functions, tables, Figs 1-8, the scorecard.
"""

from resstream.base.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    measure_job="run_block_measurement",
    summary="derive_table build_summary",
    figures="make_figure",
    scorecard="write_scorecard",
)
