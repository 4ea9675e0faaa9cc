"""The workflow's own machinery (rule file: rules/common.smk): config validation, the study plan,
job resources, the job runner, the results-folder lock and the pre-flight checks. It is the top
floor: it may use every stage, and no stage uses it (what stages share lives in resstream.base).
"""

from resstream.base.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__, config="validate_config", plan="StudyPlan", job_runner="script_main"
)
