"""Glue between Snakemake and the library in Snakemake's own process: the pre-flight checks.
(What runs inside a job is :mod:`resstream.workflow.job_runner`.)

Known problems (bad config, missing weights, unreadable data) end with ONE line that names the
problem and the fix, not a traceback.

The pre-flight has two parts, each run where it is needed:

* :func:`check_config_or_exit` (every snakemake command, at parse time, before Snakemake plans
  anything): the schema, then every config value a job would later refuse, so that Snakemake
  never removes the outputs of jobs that would then fail on a typo.
* :func:`check_inputs_or_exit` (what a run reads: weights, the dataset listing, the device): in a
  real run just before the first job starts (``onstart``, after planning, before Snakemake removes
  anything), in a dry run at parse time without fetching anything, and never for maintenance
  commands (``--unlock``, ``--lint``, ``--report``), which need neither weights nor data.
* :func:`move_damaged_outputs_or_exit` (a run's main process, at parse time, before planning): the
  finished HDF5 outputs jobs read, checked cheaply; a damaged one is moved aside and the run stops.
"""

from __future__ import annotations

import os
import sys

from resstream.base.errors import ConfigError, UserError
from resstream.workflow.command_line import yaml_error_place
from resstream.workflow.config import validate_config
from resstream.workflow.plan import StudyPlan


def check_config_or_exit(config: dict, basedir: str, preflight: bool = False) -> StudyPlan:
    """Validate the config, resolve the study and check every value a job would refuse; on a user
    error print one line and exit 1.  ``preflight`` (Snakemake's main process only, not every job's
    re-parse) adds the checks that read other runs' files (``compare.runs``)."""
    try:
        cfg = validate_config(dict(config))
        config.clear()
        config.update(cfg)
        study = StudyPlan(cfg)
        check_config_values(study, other_runs=preflight)
    except UserError as exc:
        _die(str(exc))
    return study


def check_config_values(study: StudyPlan, other_runs: bool = True) -> None:
    """Raise a :class:`UserError` for the first config value some job would refuse (the schema has
    passed): every block's channels, ``model.weights`` / ``model.checkpoint`` as a spec,
    ``activations.spatial_layers``, ``analysis.fig3_fig4_blocks``, ``analysis.figure_channels``, ``ablation``, ``dictionary``
    and (``other_runs``) the runs ``compare.runs`` lists.  ``study.blocks``,
    ``study.channels_by_block`` and ``fv.overrides`` are checked by :class:`StudyPlan` itself."""
    from resstream.ablation.settings import check_ablation
    from resstream.analysis.summary import fig3_fig4_blocks
    from resstream.compare.runs import check_runs
    from resstream.dictionary.settings import check_dictionary
    from resstream.model.weights_spec import check_weights_spec

    cfg = study.config
    for block in study.study_blocks:
        study.block_channels(block)
    check_weights_spec(cfg["model"]["arch"], cfg["model"]["weights"], cfg["model"]["checkpoint"])
    study.spatial_layers()
    fig3_fig4_blocks(study, cfg["analysis"]["fig3_fig4_blocks"])
    _check_figure_channels(study)
    check_ablation(study)
    check_dictionary(study)
    if other_runs:
        check_runs(cfg["compare"]["runs"], cfg["results"])


def _check_figure_channels(study: StudyPlan) -> None:
    """Fig 1 draws measured channels only: a listed block must exist, and a studied block's listed
    channels must be among its studied channels (a block outside study.blocks is skipped)."""
    names = [b.name for b in study.blocks]
    for block, channels in study.config["analysis"]["figure_channels"].items():
        key = f"analysis.figure_channels.{block}"
        if block not in names:
            raise ConfigError(f"{key}: {study.arch} has no block {block}; its blocks are {', '.join(names)}")
        if block in study.study_blocks:
            studied = set(study.block_channels(block))
            bad = [c for c in channels if c not in studied]
            if bad:
                raise ConfigError(
                    f"{key}: channel(s) {bad} are not among the channels studied in block {block} "
                    f"(study.channels / study.channels_by_block); Fig 1 shows measured channels only"
                )
        else:
            bad = [c for c in channels if c >= study.block_info(block).channels]
            if bad:
                raise ConfigError(
                    f"{key}: channel(s) {bad} out of range for block {block}, which has "
                    f"channels 0..{study.block_info(block).channels - 1}"
                )


def check_inputs_or_exit(study: StudyPlan, dry_run: bool = False, local_exec: bool = True) -> None:
    """Check what a run reads, before any job starts: the dataset listing (links followed, cycles
    refused), the weights (file present, sha256, a custom checkpoint's keys; missing hub weights
    fetched here once, or in a dry run only reported) and, for local execution, a requested CUDA
    device.  On a user error print one line and exit 1."""
    from resstream.data.image_manifest import listed_images
    from resstream.model.weights import check_weights_available, missing_hub_file

    cfg = study.config
    path, model = cfg["dataset"]["path"], cfg["model"]
    if path is None:
        _die(
            "dataset.path is not set: point it at your ImageNet validation folder "
            "(snakemake --cores N --config 'dataset={path: /data/imagenet/val}'), "
            "or run the small demo instead: make demo"
        )
    try:
        _check_dataset_path(path, demo=bool(cfg.get("demo")))
        # a dry run never downloads weights; a real run fetches missing hub weights here, once
        check_weights_available(
            model["arch"], model["weights"], model["allow_download"], fetch=not dry_run, checkpoint=model["checkpoint"]
        )
        listed_images(path)  # the listing the jobs' budgets reuse
        if dry_run and (cached := missing_hub_file(model["arch"], model["weights"])) is not None:
            hub = "the Hugging Face hub cache" if model["arch"].startswith("timm:") else "torch's hub cache"
            print(
                f"resstream: note: weights {model['arch']} {model['weights']} are not in {hub} "
                f"({cached}); the run downloads them before its first job (model.allow_download).",
                file=sys.stderr,
            )
        _note_timm_preprocessing(model["arch"])
        if not dry_run and local_exec and model["device"] == "cuda":
            _check_cuda_visible()
    except UserError as exc:
        _die(str(exc))


def _note_timm_preprocessing(arch: str) -> None:
    """A timm arch reads images its own way: say how, once per run."""
    from resstream.model import preprocessing, timm_models

    if timm_models.is_timm(arch):
        print(f"resstream: note: {preprocessing.applied_line(arch)}", file=sys.stderr)


def _check_dataset_path(path: str, demo: bool) -> None:
    """A ``dataset.path`` that is no folder, in one line: only the demo's own sample folder, not
    yet fetched, is something to fetch; a typo or a file is named as such."""
    from resstream.data.sample import DEFAULT_DEST

    if os.path.isdir(path):
        return
    if demo and not os.path.exists(path) and os.path.normpath(path) == os.path.normpath(DEFAULT_DEST):
        raise UserError(
            f"dataset.path {path} does not exist: the demo's sample is not fetched yet. Fix: make demo (or "
            f"resstream fetch-sample --dest {path}) fetches it; set RESSTREAM_SAMPLE to a local copy when offline."
        )
    what = "is a file, not a folder of images" if os.path.exists(path) else "does not exist"
    demo_hint = f" (the demo's sample is {DEFAULT_DEST}, from resstream fetch-sample)" if demo else ""
    raise UserError(
        f"dataset.path {path} {what}. Fix: set dataset.path to an ImageNet-style validation folder "
        f"(class sub-folders) or a flat folder of images{demo_hint}."
    )


def move_damaged_outputs_or_exit(study: StudyPlan, dry_run: bool = False) -> None:
    """Snakemake's main process, before it plans: a damaged HDF5 output (truncated in place, an
    interrupted copy) would make every job reading it fail, after Snakemake had removed those jobs'
    finished outputs, and again at every rerun.  Each one found
    (:func:`resstream.workflow.damaged_outputs.find_damaged`) is renamed to ``NAME.damaged-<UTC time>``
    (kept, never deleted) and the run stops with one line per file, so that nothing else is touched;
    the next run remakes it.  A dry run only says what a run would do."""
    from resstream.workflow.damaged_outputs import find_damaged

    lines = [_moved_aside(output, path, why, dry_run) for output, path, why in find_damaged(study)]
    for line in lines[:-1]:
        print(f"resstream: {line}", file=sys.stderr)
    if lines:
        _die(lines[-1])


def _moved_aside(output: str, path: str, why: str, dry_run: bool) -> str:
    """The line of one damaged output, moved aside here unless in a dry run."""
    from resstream.workflow.damaged_outputs import move_aside

    if dry_run:
        return (
            f"{path} is damaged ({why}); a run without --dry-run moves {output} aside to "
            f"{output}.damaged-<UTC time> (kept, not deleted) and the run after it remakes it"
        )
    return (
        f"{path} is damaged ({why}); moved {output} aside to {move_aside(output)} (kept, not deleted). "
        f"Fix: run the same snakemake command again: it remakes {output} and what reads it"
    )


# Snakemake commands that change nothing under the results folder: they take no results-folder lock,
# so they work while a run is going (a dry run and --report are told apart by the workflow itself)
READ_ONLY_COMMANDS = frozenset(
    {
        "--unlock",
        "--lint",
        "--list-rules",
        "--list",
        "-l",
        "--list-target-rules",
        "--lt",
        "--summary",
        "-S",
        "--detailed-summary",
        "-D",
        "--list-changes",
        "--lc",
        "--list-untracked",
        "--lu",
        "--dag",
        "--rulegraph",
        "--filegraph",
        "--d3dag",
        "--containerize",
        "--print-compilation",
    }
)

# Snakemake commands that run no job: they read nothing a job reads, so no output is moved aside
# in them (Snakemake tells the workflow nothing of them while it parses; its command line does).
# The read-only ones and those that touch, delete or archive outputs without running a job.
MAINTENANCE_FLAGS = READ_ONLY_COMMANDS | {
    "--report",
    "--cleanup-metadata",
    "--cm",
    "--touch",
    "-t",
    "--delete-all-output",
    "--delete-temp-output",
    "--archive",
    "--generate-unit-tests",
    "--export-cwl",
    "--conda-create-envs-only",
    "--conda-cleanup-envs",
}


def maintenance_requested(argv: list[str] | None = None) -> bool:
    """True for a snakemake command line that runs no job (``MAINTENANCE_FLAGS``; ``--report`` with
    ``--report-after-run`` is a run)."""
    argv = sys.argv[1:] if argv is None else argv
    flags = {arg.split("=", 1)[0] for arg in argv}
    if "--report-after-run" in flags:
        flags.discard("--report")
    return bool(flags & MAINTENANCE_FLAGS)


def _check_cuda_visible() -> None:
    import torch

    if not torch.cuda.is_available():
        raise UserError(
            "model.device is 'cuda' but no CUDA device is visible to this local run. Fix: set "
            "model.device: auto or cpu, or run where a GPU is visible (or through a cluster profile)."
        )


ALLOCATION_SLOT = "allocation_slot"


def one_slot_per_allocation(workflow) -> None:
    """Under a cluster executor, give every submission one ``allocation_slot`` (unless the command
    line gives another number), the resource each FV job takes: Snakemake packs a group's jobs into
    layers that fit the run's resources, so the grouped FV jobs run one after another on a GPU and
    on CPUs alike, and a group asks for the largest CPUs and memory of its jobs and the sum of their
    runtimes.  Set here, not in profiles/slurm: the workflow's own profiles/default comes after a
    ``--profile`` and its ``resources:`` replaces the cluster profile's.  The slot's scope is local
    (profiles/slurm), so it caps each allocation, never how many run at once."""
    if not workflow.local_exec:
        workflow.global_resources.setdefault(ALLOCATION_SLOT, 1)


def check_slurm_or_exit(workflow) -> None:
    """Under the SLURM executor (Snakemake's main process, before the first sbatch): stop with one
    line when job status could never be read (:mod:`resstream.workflow.slurm_check`), and warn of
    every job that asks for more than any node offers.  Grouped FV jobs run one after another
    (profiles/slurm), so a group asks for no more CPUs, memory or GPUs than its largest job:
    checking each job checks the groups."""
    from resstream.workflow.slurm_check import largest_node, oversized_requests, status_command_problem

    plugin, settings = workflow.executor_plugin, workflow.executor_settings
    if plugin is None or plugin.name != "slurm":
        return
    problem = status_command_problem(settings.status_command, settings.init_seconds_before_status_checks or 0)
    if problem:
        _die(problem)
    node = largest_node()
    if node is None:
        return
    requests = {}
    for job in workflow.dag.needrun_jobs():
        if not job.is_local:
            request = _slurm_request(job)
            requests.setdefault((request.cpus, request.mem_mb, request.gpus, job.rule.name), request)
    for line in oversized_requests(list(requests.values()), node):
        print(f"resstream: {line}", file=sys.stderr)


def _slurm_request(job):
    """The CPUs, memory and GPUs the plugin asks sbatch for one job (its --cpus-per-gpu,
    --cpus-per-task or threads)."""
    from resstream.workflow.slurm_check import Request

    res = job.resources
    gpus = int(res.get("gpu", 0) or 0)
    if gpus and res.get("cpus_per_gpu"):
        cpus = int(res.get("cpus_per_gpu")) * gpus
    else:
        cpus = int(res.get("cpus_per_task") or job.threads)
    return Request(
        f"{job.rule.name} ({', '.join(f'{k}={v}' for k, v in job.wildcards.items()) or 'one job'})",
        cpus,
        int(res.get("mem_mb", 0) or 0),
        gpus,
    )


def report_requested(argv: list[str] | None = None) -> str | None:
    """``"report"`` when this snakemake command writes a report of finished outputs (``--report``),
    ``"after-run"`` with ``--report-after-run``, else None.  Snakemake tells the workflow nothing
    of it while parsing, so its own argument parser reads the command line (only when an argument
    starts with ``--rep``: building the parser takes most of a second)."""
    argv = sys.argv[1:] if argv is None else argv
    if not any(a.startswith("--rep") for a in argv):
        return None
    from snakemake.cli import get_argument_parser

    try:
        args, _unknown = get_argument_parser().parse_known_args(argv)
    except SystemExit:  # not snakemake's command line (the Python API in a program of its own)
        return None
    if not getattr(args, "report", None):
        return None
    return "after-run" if args.report_after_run else "report"


def check_yaml_or_exit(path: str) -> None:
    """The workflow's own config file (the Snakefile's ``configfile:``) parses as YAML; if not, one
    line naming the file, the line and the problem (Snakemake's message names neither), exit 1.  A
    missing file is left to Snakemake, whose message names it."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            yaml.safe_load(f)
    except FileNotFoundError:
        return
    except UnicodeDecodeError as exc:
        _die(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8")
    except yaml.YAMLError as exc:
        _die(f"{path} is not valid YAML: {yaml_error_place(exc)}; fix the file there")


def needs_run_lock(dry_run: bool, argv: list[str] | None = None) -> bool:
    """Whether this snakemake command may write under the results folder, so takes its lock: not a
    dry run, not ``--report`` alone (``--report-after-run`` runs the workflow), not a command of
    :data:`READ_ONLY_COMMANDS`."""
    argv = sys.argv[1:] if argv is None else argv
    if dry_run or report_requested(argv) == "report":
        return False
    return not any(a.split("=", 1)[0] in READ_ONLY_COMMANDS for a in argv)


def take_run_lock_or_exit(results: str) -> None:
    """Take the results folder's lock for this run (:mod:`resstream.workflow.run_lock`) and make
    SIGINT stop the jobs the run starts (:mod:`resstream.workflow.stop`); while another run holds
    the lock, print one line and exit 1."""
    from resstream.workflow.run_lock import take_results_lock
    from resstream.workflow.stop import install_stop_handler

    try:
        for note in take_results_lock(results):
            print(f"resstream: {note}", file=sys.stderr)
    except UserError as exc:
        _die(str(exc))
    except OSError as exc:  # cannot be made or written: a file in its path, no permission
        _die(
            f"results folder {results} cannot be used: {exc.strerror} ({exc.filename}); set results: to a "
            f"folder you can write to"
        )
    install_stop_handler()


def _die(message: str):
    print(f"resstream: {message}", file=sys.stderr)
    sys.exit(1)
