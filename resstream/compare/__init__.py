"""Cross-run comparison (rule file: rules/compare.smk): several finished runs' summaries and metric
tables side by side.
"""

from resstream.base.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, runs="compare_runs")
