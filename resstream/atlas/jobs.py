"""The specs of the atlas's jobs, built from the study plan (:class:`resstream.workflow.plan.StudyPlan`,
passed in): one job per block (its table page, unit pages and thumbnails), so changing one block's
settings rebuilds only that block's folder, and the index, which reads the summary's counts, the FV
tables' M values and the scorecard.  The jobs run :func:`resstream.atlas.write.atlas_block_job` and
:func:`~resstream.atlas.write.atlas_index_job`; the channel-objective FVs the unit pages show are the
FV stage's ``fv_channel_chunk`` jobs."""

from __future__ import annotations

from resstream.activations.jobs import block_exemplar_dirs
from resstream.analysis.jobs import metric_tables, with_sidecars
from resstream.analysis.scorecard import scorecard_outputs
from resstream.analysis.summary import metric_table_csv, summary_json
from resstream.base.job_resources import per_unit_runtime, small_job_mem_mb
from resstream.base.job_spec import JobSpec
from resstream.base.paths import ablation_file, atlas_block_dir, dictionary_dir, dictionary_pictures_dir
from resstream.base.tables import sidecar_json
from resstream.fv.jobs import block_channel_fv_dirs, block_fv_dirs

PICTURE_SETTINGS = ("channel_fvs", "fv_px", "top9_px", "row_px", "jpeg_quality")
LESION_FILES = ("lesion_ratios.csv", "mix_classes.csv", "ablation.png")  # ratios, mix-class table, figure


def lesion_inputs(plan, block: str) -> list[str]:
    """The ablation stage's tables and figure a block's page shows (its lesion section), only when
    the stage runs and lesions the block: the atlas must not need the stage."""
    ablation = plan.config["ablation"]
    if not (ablation["enabled"] and block in ablation["blocks"]):
        return []
    return [ablation_file(plan.config["results"], name) for name in LESION_FILES]


def atlas_block_spec(plan) -> JobSpec:
    """One block's folder (wildcard ``block``)."""
    results, atlas = plan.config["results"], plan.config["atlas"]

    def table(stimulus):
        return lambda w: metric_table_csv(results, w.block, stimulus)

    return JobSpec(
        input={
            "fv": table("fv"),
            "imagenet": table("imagenet"),
            "fv_meta": lambda w: sidecar_json(table("fv")(w)),
            "imagenet_meta": lambda w: sidecar_json(table("imagenet")(w)),
            "fv_images": lambda w: block_fv_dirs(plan, w.block),
            "channel_fvs": lambda w: block_channel_fv_dirs(plan, w.block),
            "exemplars": lambda w: block_exemplar_dirs(plan, w.block),
            "lesions": lambda w: lesion_inputs(plan, w.block),
            # the block's dictionary pictures (its feature pages are linked), when it has a crosscoder
            "dictionary_pictures": lambda w: dictionary_pictures_inputs(plan, w.block),
            "lesions_meta": lambda w: [sidecar_json(p) for p in lesion_inputs(plan, w.block) if p.endswith(".csv")],
        },
        params={"layers": lambda w: plan.block_layers(w.block), "settings": {k: atlas[k] for k in PICTURE_SETTINGS}},
        resources={
            "runtime": lambda w, attempt: per_unit_runtime("atlas_block", len(plan.block_channels(w.block)), attempt),
            "mem_mb": lambda w, attempt: small_job_mem_mb(attempt),
        },
    )


def dictionary_pictures_inputs(plan, block: str) -> list[str]:
    section = plan.config["dictionary"]
    if not (section["enabled"] and section["scope"] == "block" and block in plan.study_blocks):
        return []
    return [dictionary_pictures_dir(plan.config["results"], block)]


def atlas_dictionary_spec(plan) -> JobSpec:
    """A block's dictionary-feature pages (wildcard ``block``), from its crosscoder and pictures."""
    results, atlas = plan.config["results"], plan.config["atlas"]
    return JobSpec(
        input={
            "dictionary": lambda w: dictionary_dir(results, w.block),
            "pictures": lambda w: dictionary_pictures_dir(results, w.block),
        },
        params={"settings": {k: atlas[k] for k in PICTURE_SETTINGS}, "studied": lambda w: plan.block_channels(w.block)},
        resources={"mem_mb": lambda w, attempt: small_job_mem_mb(attempt)},
    )


def atlas_index_spec(plan) -> JobSpec:
    """The index, stylesheet and script; the scorecard's CSV is read with its JSON sidecar."""
    results = plan.config["results"]
    scorecard = scorecard_outputs(results)["csv"]
    return JobSpec(
        input={
            "blocks": [atlas_block_dir(results, b) for b in plan.study_blocks],
            **with_sidecars(fv=metric_tables(plan, "fv")),
            "summary": summary_json(results),
            "scorecard": scorecard,
            "scorecard_meta": sidecar_json(scorecard),
        },
        params={"blocks": plan.study_blocks},
    )
