"""The spec of the ``model_card`` job, built from the study plan (:class:`resstream.workflow.plan.StudyPlan`,
passed in): the network it loads and the card's facts.  The job runs
:func:`resstream.model.card.model_card_job`."""

from __future__ import annotations

from resstream.base.job_resources import small_job_mem_mb, small_job_runtime
from resstream.base.job_spec import JobSpec
from resstream.model.card import card_facts
from resstream.model.weights import model_param


def model_card_spec(plan) -> JobSpec:
    return JobSpec(
        params={"model": model_param(plan.config["model"]), "card": lambda w: card_facts(plan)},
        resources={
            "runtime": lambda w, attempt: small_job_runtime(attempt),
            "mem_mb": lambda w, attempt: small_job_mem_mb(attempt),
        },
    )
