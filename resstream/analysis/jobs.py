"""The specs of the analysis stage's jobs, built from the study plan
(:class:`resstream.workflow.plan.StudyPlan`, passed in): per block the two measurements (on its FVs; on
the dataset's top images) and the metric tables, then the summary, Figs 1-8 and the reproduction
scorecard.  The jobs run the entry points beside their work (``measure_job``, ``metric_table_job``,
``summary_job``, ``figure_job``, ``paper_check_job``); no job imports this module, so an edit of a
budget reruns nothing.

A metric table's settings are the metric_table job's params, so changing ``mix_factor`` or
``scale_rule`` never re-measures; every table a job reads is declared with its JSON sidecar.
"""

from __future__ import annotations

from resstream.activations.jobs import block_exemplar_dirs, manifest_path
from resstream.analysis.scorecard import CLAIMS_PATH
from resstream.analysis.summary import FIG34, FIGURE_READS, TABLE_SETTINGS, fig3_fig4_blocks, metric_table_csv
from resstream.base.job_resources import measure_mem_mb, per_unit_runtime
from resstream.base.job_spec import JobSpec
from resstream.base.paths import ablation_file, activations_h5
from resstream.base.tables import sidecar_json
from resstream.data.image_manifest import dataset_images
from resstream.fv.jobs import all_fv_dirs, block_channel_fv_dirs, block_fv_dirs
from resstream.model.weights import model_param

STIMULI = ("fv", "imagenet")


def metric_tables(plan, stimulus: str, blocks=None) -> list[str]:
    """The metric tables of ``stimulus`` of ``blocks`` (default: every studied block)."""
    return [
        metric_table_csv(plan.config["results"], b, stimulus) for b in (plan.study_blocks if blocks is None else blocks)
    ]


def with_sidecars(**tables: list[str]) -> dict:
    """Named table inputs, each list followed by its tables' JSON sidecars (``<name>_meta``), which
    the tables' reader reads too."""
    return {**tables, **{f"{name}_meta": [sidecar_json(t) for t in paths] for name, paths in tables.items()}}


def measure_spec(plan, stimulus: str) -> JobSpec:
    """A block's measurement (wildcard ``block``) on its FVs (``stimulus="fv"``) or on the dataset's
    top images of its units (``"imagenet"``, which opens the images the manifest lists)."""
    config = plan.config
    inputs = {
        "fv": (lambda w: block_fv_dirs(plan, w.block)) if stimulus == "fv" else [],
        "activations": activations_h5(config["results"]),
    }
    if stimulus == "imagenet":
        inputs["images"] = manifest_path(plan)

    def channels(w):
        return len(plan.block_channels(w.block))

    return JobSpec(
        input=inputs,
        params={
            "stimulus": stimulus,
            "model": model_param(config["model"]),
            "device": config["model"]["device"],
            "o_relu": plan.o_relu,
            "channels": lambda w: plan.block_channels(w.block),
        },
        resources={
            "runtime": lambda w, attempt: per_unit_runtime(f"measure_{stimulus}", channels(w), attempt),
            "mem_mb": lambda w, attempt: measure_mem_mb(
                channels(w), dataset_images(config["dataset"]["path"]), attempt
            ),
            "batch_size": config["analysis"]["batch_size"],
        },
    )


def metric_table_spec(plan) -> JobSpec:
    """A measurement table to its metric table (wildcards ``block``, ``stimulus``)."""
    results, analysis = plan.config["results"], plan.config["analysis"]
    raw = f"{results}/analysis/{{block}}/{{stimulus}}_raw.csv"
    return JobSpec(
        input={"csv": raw, "meta": sidecar_json(raw)}, params={"analysis": {k: analysis[k] for k in TABLE_SETTINGS}}
    )


def fig34_blocks(plan) -> list[str]:
    return fig3_fig4_blocks(plan, plan.config["analysis"]["fig3_fig4_blocks"])


def summary_spec(plan) -> JobSpec:
    return JobSpec(
        input=with_sidecars(fv=metric_tables(plan, "fv"), imagenet=metric_tables(plan, "imagenet")),
        params={"blocks": plan.study_blocks, "fig34_blocks": fig34_blocks(plan)},
    )


def figure_blocks(plan, fig: str) -> list[str]:
    return fig34_blocks(plan) if fig in FIG34 else plan.study_blocks


def figure_spec(plan, fig: str) -> JobSpec:
    """Figure ``fig``: the tables and pictures it reads (``FIGURE_READS``) and the options it takes,
    and only those: the channels Fig 1 lists, the roles whose channel FVs Figs 1 and 6 show."""
    blocks, reads = figure_blocks(plan, fig), FIGURE_READS[fig]
    tables = {"fv": metric_tables(plan, "fv", blocks)}
    if "imagenet" in reads:
        tables["imagenet"] = metric_tables(plan, "imagenet", blocks)
    inputs = with_sidecars(**tables)
    if "fv_images" in reads:
        inputs["fv_images"] = all_fv_dirs(plan)
    if "exemplars" in reads:
        inputs["exemplars"] = sorted({d for b in plan.study_blocks for d in block_exemplar_dirs(plan, b)})
    if "channel_fvs" in reads:
        inputs["channel_fvs"] = [d for b in plan.study_blocks for d in block_channel_fv_dirs(plan, b)]
    options = {}
    if fig == "fig1":
        options["figure_channels"] = plan.config["analysis"]["figure_channels"]
    if "channel_fvs" in reads:
        options["channel_fv_roles"] = list(plan.channel_fv_roles)
    return JobSpec(input=inputs, params={"figure": fig, "blocks": blocks, "options": options})


def lesion_ratio_tables(plan) -> list[str]:
    """The ablation stage's ``lesion_ratios.csv`` (the follow-up paper's rows of the scorecard),
    only when the stage runs."""
    return [ablation_file(plan.config["results"], "lesion_ratios.csv")] if plan.config["ablation"]["enabled"] else []


def paper_check_spec(plan) -> JobSpec:
    """The reproduction scorecard: every claim of ``paper_claims.yaml`` against the tables (and the
    follow-up paper's against the lesions, when the ablation stage runs)."""
    return JobSpec(
        input={
            **with_sidecars(
                fv=metric_tables(plan, "fv"),
                imagenet=metric_tables(plan, "imagenet"),
                lesions=lesion_ratio_tables(plan),
            ),
            "claims": str(CLAIMS_PATH),
        },
        params={
            "blocks": plan.study_blocks,
            "block_channels": {b: plan.block_info(b).channels for b in plan.study_blocks},
            "readings": plan.config["analysis"]["scorecard"],
        },
    )
