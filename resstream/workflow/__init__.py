"""The workflow's own machinery (rule file: rules/common.smk): the config and its schema, the study
plan, output paths, atomic publishing, job resources, the job runner, GPU slots, code fingerprints.
"""

from resstream.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__, config="validate_config", plan="Study", job_runner="script_main", outputs="publish_dir"
)
