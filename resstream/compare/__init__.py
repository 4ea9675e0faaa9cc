"""Cross-run comparison (rule file: rules/compare.smk): several finished runs' summaries and metric
tables side by side.
"""

from resstream.lazy_exports import lazy_exports

ENTRY_POINTS = {
    "compare_runs": "runs",
}
__all__ = sorted(ENTRY_POINTS)
__getattr__, __dir__ = lazy_exports(__name__, ENTRY_POINTS)
