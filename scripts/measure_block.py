# Thin: run on the device the job declares (decided before torch is imported), then the library
# measures the block (resstream/analysis/measure.py) with what the rule declares.
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.base.gpu_slots import declared_gpus, prepare_job_device  # noqa: E402  (imports no torch)

params = snakemake.params
GPUS = prepare_job_device(params.device, declared_gpus(snakemake), params.gpu_slots)

from resstream.workflow.job_runner import script_main  # noqa: E402
from resstream.analysis.measure_job import run_block_measurement  # noqa: E402

fv_dirs = snakemake.input.fv if params.stimulus == "fv" else []
script_main(
    snakemake,
    lambda: run_block_measurement(
        params.stimulus, snakemake.wildcards.block, params.channels, params.o_relu, params.model,
        snakemake.input.activations, snakemake.output.csv, fv_dirs=fv_dirs, batch_size=snakemake.resources.batch_size,
        device=params.device, gpus=GPUS,
    ),
)
