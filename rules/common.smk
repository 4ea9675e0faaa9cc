# Shared set-up: config validation, the study plan and the paths every stage uses.
import sys

from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)

from resstream.paths import channel_fv_chunk_dir, fv_chunk_dir  # noqa: E402
from resstream.smk import (  # noqa: E402
    check_config_or_exit,
    check_inputs_or_exit,
    report_requested,
)
from resstream.weights import weights_param  # noqa: E402

# Our check first: it names the offending key in one line (snakemake's own prints the schema), and
# it checks every config value a job would refuse, before Snakemake plans (and removes) anything.
STUDY = check_config_or_exit(
    config, workflow.basedir, preflight=workflow.is_main_process
)
validate(config, "../resstream/schemas/config.schema.yaml")

# What a run reads (weights, dataset, device) is checked only where it is read: a dry run reports
# here, without fetching; a real run checks in onstart (below), before any job starts and before
# Snakemake removes outputs; --lint, --unlock and --report need neither weights nor data.
if workflow.is_main_process and workflow.output_settings.dryrun:
    check_inputs_or_exit(STUDY, dry_run=True)


onstart:
    if workflow.is_main_process:
        check_inputs_or_exit(STUDY, local_exec=workflow.local_exec)


# --report: captions and report text read what made the outputs from the outputs themselves
# (resstream/provenance.py), never from the config given to --report; with --report-after-run
# they are read again once the run has made the outputs.
REPORT = report_requested() if workflow.is_main_process else None
if REPORT:
    from resstream.provenance import report_facts

    config["report_facts"] = report_facts(STUDY)


onsuccess:
    if REPORT == "after-run":
        config["report_facts"] = report_facts(STUDY)


RESULTS = STUDY.config["results"]
# the rules' weights param: the spec, plus the file's sha256 for a checkpoint of one's own
WEIGHTS = weights_param(STUDY.config["model"])
ENVS = f"{workflow.basedir}/envs"
FINAL_OUTPUTS = []


def fv_chunk_dirs(layer):
    """Every FV chunk folder of a layer (the FV stage's outputs), for rules that read FVs."""
    return [fv_chunk_dir(RESULTS, layer, c.name) for c in STUDY.chunks(layer)]


def block_fv_chunk_dirs(block):
    """FV chunk folders of the I, B and O layers of one studied block."""
    layers = [
        name for name, uses in STUDY.layers.items() if any(b == block for b, _ in uses)
    ]
    return [d for layer in layers for d in fv_chunk_dirs(layer)]


def channel_fv_chunk_dirs(layer):
    return [
        channel_fv_chunk_dir(RESULTS, layer, c.name)
        for c in STUDY.channel_fv_chunks(layer)
    ]


def block_channel_fv_dirs(block):
    """Channel-FV chunk folders of the roles of one block that atlas.channel_fvs names."""
    layers = STUDY.block_layers(block)
    return [
        d
        for role in STUDY.channel_fv_roles
        for d in channel_fv_chunk_dirs(layers[role])
    ]


def _uses_gpu():
    device = STUDY.config["model"]["device"]
    if device in ("cpu", "cuda"):
        return int(device == "cuda")
    from resstream.device import cuda_unusable_reason

    return int(cuda_unusable_reason() is None)


# Jobs that load the model declare gpu=1 when they will use a GPU, so `--resources gpu=N` caps them
# at the number of devices; each such job runs on the device it declares (resstream/gpu_slots.py:
# a GPU of its own, or none at all when it declares 0).
GPU_PER_JOB = _uses_gpu()
