"""The workflow's own machinery (rule file: rules/common.smk): the config and its schema, the study
plan, output paths, atomic publishing, job resources, the job runner, GPU slots, code fingerprints.
"""

from resstream.lazy_exports import lazy_exports

ENTRY_POINTS = {
    "validate_config": "config",
    "Study": "config",
    "script_main": "job_runner",
    "publish_dir": "outputs",
}
__all__ = sorted(ENTRY_POINTS)
__getattr__, __dir__ = lazy_exports(__name__, ENTRY_POINTS)
