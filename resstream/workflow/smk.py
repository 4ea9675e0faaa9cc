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
"""

from __future__ import annotations

import os
import sys

from resstream.errors import ConfigError

from resstream.workflow.plan import Study

from resstream.workflow.config import validate_config
from resstream.errors import UserError


def check_config_or_exit(config: dict, basedir: str, preflight: bool = False) -> Study:
    """Validate the config, resolve the study and check every value a job would refuse; on a user
    error print one line and exit 1.  ``preflight`` (Snakemake's main process only, not every job's
    re-parse) adds the checks that read other runs' files (``compare.runs``)."""
    try:
        cfg = validate_config(dict(config))
        config.clear()
        config.update(cfg)
        study = Study(cfg)
        check_config_values(study, other_runs=preflight)
    except UserError as exc:
        _die(str(exc))
    return study


def check_config_values(study: Study, other_runs: bool = True) -> None:
    """Raise a :class:`UserError` for the first config value some job would refuse (the schema has
    passed): every block's channels, ``model.weights`` / ``model.checkpoint`` as a spec,
    ``activations.spatial_layers``, ``analysis.fig3_fig4_blocks``, ``analysis.figure_channels``
    and (``other_runs``) the runs ``compare.runs`` lists.  ``study.blocks``,
    ``study.channels_by_block`` and ``fv.overrides`` are checked by :class:`Study` itself."""
    from resstream.analysis.summary import fig3_fig4_blocks
    from resstream.compare.runs import check_runs
    from resstream.model.weights import check_weights_spec

    cfg = study.config
    for block in study.study_blocks:
        study.block_channels(block)
    check_weights_spec(cfg["model"]["arch"], cfg["model"]["weights"], cfg["model"]["checkpoint"])
    study.spatial_layers()
    fig3_fig4_blocks(study, cfg["analysis"]["fig3_fig4_blocks"])
    _check_figure_channels(study)
    if other_runs:
        check_runs(cfg["compare"]["runs"], cfg["results"])


def _check_figure_channels(study: Study) -> None:
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
                raise ConfigError(f"{key}: channel(s) {bad} out of range for block {block}, which has "
                                  f"channels 0..{study.block_info(block).channels - 1}")


def check_inputs_or_exit(study: Study, dry_run: bool = False, local_exec: bool = True) -> None:
    """Check what a run reads, before any job starts: the dataset listing (links followed, cycles
    refused), the weights (file present, sha256, a custom checkpoint's keys; missing hub weights
    fetched here once, or in a dry run only reported) and, for local execution, a requested CUDA
    device.  On a user error print one line and exit 1."""
    from resstream.model.weights import check_weights_available, missing_hub_file
    from resstream.workflow.job_resources import listed_images

    cfg = study.config
    path, model = cfg["dataset"]["path"], cfg["model"]
    if path is None:
        _die(
            "dataset.path is not set: point it at your ImageNet validation folder "
            "(snakemake --cores N --config 'dataset={path: /data/imagenet/val}'), "
            "or run the small demo instead: make demo"
        )
    try:
        if not os.path.isdir(path) and cfg.get("demo"):
            raise UserError(f"dataset.path {path} is not a folder: the demo's sample is missing. Fix: make demo (or "
                            f"resstream fetch-sample --dest {path}) fetches it; set RESSTREAM_SAMPLE to a local copy when offline.")
        # a dry run never downloads weights; a real run fetches missing hub weights here, once
        check_weights_available(model["arch"], model["weights"], model["allow_download"], fetch=not dry_run,
                                checkpoint=model["checkpoint"])
        listed_images(path)  # the listing the jobs' budgets reuse
        if dry_run and (cached := missing_hub_file(model["arch"], model["weights"])) is not None:
            print(f"resstream: note: weights {model['arch']} {model['weights']} are not in torch's hub cache "
                  f"({cached}); the run downloads them before its first job (model.allow_download).", file=sys.stderr)
        if not dry_run and local_exec and model["device"] == "cuda":
            _check_cuda_visible()
    except UserError as exc:
        _die(str(exc))


def _check_cuda_visible() -> None:
    import torch

    if not torch.cuda.is_available():
        raise UserError("model.device is 'cuda' but no CUDA device is visible to this local run. Fix: set "
                        "model.device: auto or cpu, or run where a GPU is visible (or through a cluster profile).")


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
    return Request(f"{job.rule.name} ({', '.join(f'{k}={v}' for k, v in job.wildcards.items()) or 'one job'})",
                   cpus, int(res.get("mem_mb", 0) or 0), gpus)


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


def _die(message: str):
    print(f"resstream: {message}", file=sys.stderr)
    sys.exit(1)
