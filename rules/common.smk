# Shared set-up: config validation, the study plan (PLAN: blocks, taps, channels; each stage's
# resstream/<stage>/jobs.py builds its rules' specs from it) and what every rule uses; its functions
# read nothing a later rule file defines.
import functools
import sys

sys.path.insert(0, workflow.basedir)

from resstream.base.code_fingerprint import code_fingerprint  # noqa: E402
from resstream.workflow.config_types import coerce_command_line  # noqa: E402
from resstream.base.gpu_slots import SLOTS_FOLDER  # noqa: E402
from resstream.workflow.renamed_outputs import move_renamed_outputs  # noqa: E402
from resstream.workflow.smk import (  # noqa: E402
    check_config_or_exit,
    check_inputs_or_exit,
    needs_run_lock,
    maintenance_requested,
    move_damaged_outputs_or_exit,
    check_slurm_or_exit,
    one_slot_per_allocation,
    report_requested,
    take_run_lock_or_exit,
)
from resstream.workflow.refusals import keep_refused_outputs  # noqa: E402
from resstream.workflow.run_lock import release_results_lock  # noqa: E402

# `--config 'analysis={mix_factor: 2}'` reaches the workflow as the string '2': typed by the schema first.
coerce_command_line(config, workflow.config_settings.config)

# The one validation pass (resstream/workflow/config.py): the schema, with its defaults filled into
# `config`, and every config value a job would refuse, each error one line naming the key, before
# Snakemake plans (and removes) anything.
PLAN = check_config_or_exit(
    config, workflow.basedir, preflight=workflow.is_main_process
)

# One run per results folder: Snakemake's main process takes the results folder's lock before it plans
# (a second run, from any working folder, stops here with one line naming the first), keeps it to the
# end (released in onsuccess/onerror and at exit) and makes Ctrl-C stop the jobs it started.
if workflow.is_main_process and needs_run_lock(workflow.output_settings.dryrun):
    take_run_lock_or_exit(PLAN.config["results"])

# Snakemake removes a failed job's outputs; not one its job refused to overwrite (written by another)
keep_refused_outputs()

# What a run reads (weights, dataset, device) is checked only where it is read: a dry run reports
# here, without fetching; a real run checks in onstart (below), before any job starts and before
# Snakemake removes outputs; --lint, --unlock and --report need neither weights nor data.
if workflow.is_main_process and workflow.output_settings.dryrun:
    check_inputs_or_exit(PLAN, dry_run=True)


onstart:
    if workflow.is_main_process:
        check_inputs_or_exit(PLAN, local_exec=workflow.local_exec)
        one_slot_per_allocation(workflow)
        check_slurm_or_exit(workflow)


# --report: captions and report text read what made the outputs from the outputs themselves
# (resstream/workflow/provenance.py), never from the config given to --report; with --report-after-run
# they are read again once the run has made the outputs.
REPORT = report_requested() if workflow.is_main_process else None
if REPORT:
    from resstream.workflow.provenance import report_facts

    config["report_facts"] = report_facts(PLAN)


onsuccess:
    release_results_lock(PLAN.config["results"])
    if REPORT == "after-run":
        config["report_facts"] = report_facts(PLAN)


onerror:
    release_results_lock(PLAN.config["results"])


RESULTS = PLAN.config["results"]
# Folders a results folder made before a rename holds under their old names move to the new ones
# (resstream/workflow/renamed_outputs.py) before Snakemake plans: nothing finished is recomputed.
if workflow.is_main_process:
    for line in move_renamed_outputs(RESULTS):
        print(f"resstream: {line}", file=sys.stderr)
# A damaged HDF5 output a job reads (activations.h5, a chunk's fv.h5) is moved aside and the run
# stops, before Snakemake plans: it never removes the finished outputs of jobs that would then fail
# on it (resstream/workflow/smk.py); commands that run no job leave it for a run.
if workflow.is_main_process and not maintenance_requested():
    move_damaged_outputs_or_exit(PLAN, dry_run=workflow.output_settings.dryrun)
# What a job is handed (docs/reruns.md "What reruns"): params hold everything that changes its outputs,
# so a change reruns it; resources hold how it runs (threads, batch sizes, workers, log frequency,
# GPU, runtime, memory), which never reruns anything.
# the lock files pinning each GPU job to a device of its own
GPU_SLOTS = f"{RESULTS}/{SLOTS_FOLDER}"
ENVS = f"{workflow.basedir}/envs"
FINAL_OUTPUTS = []


def code(script):
    """The code-fingerprint param of a rule: the resstream modules its script imports, hashed
    (resstream/base/code_fingerprint.py), so that an edit of them reruns its jobs.
    """
    return code_fingerprint(f"{workflow.basedir}/scripts/{script}")


@functools.lru_cache(maxsize=2)
def _gpus_where(local_exec):
    device = PLAN.config["model"]["device"]
    if device in ("cpu", "cuda"):
        return int(device == "cuda")
    if not local_exec:  # auto under a cluster executor: the jobs run on its GPU nodes
        return 1
    from resstream.model.device import cuda_unusable_reason

    return int(cuda_unusable_reason() is None)


def gpu_per_job(wildcards=None):
    """The GPUs a job that loads the network declares: 1 with model.device cuda, or auto where the
    jobs will have one (a cluster executor's nodes; here, when CUDA works), else 0.  Evaluated per
    job, once Snakemake knows its executor (it does not while it parses the workflow).
    """
    return _gpus_where(workflow.local_exec)

# Jobs that load the model declare gpu=1 when they will use a GPU, so `--resources gpu=N` caps them
# at the number of devices and a cluster profile asks for one; each such job runs on the device it
# declares (resstream/base/gpu_slots.py: a GPU of its own, or none at all when it declares 0).
