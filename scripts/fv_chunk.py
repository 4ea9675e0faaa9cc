# Thin: run on the device the job declares (decided before torch is imported), then render the
# chunk with what the rule declares (params: model, channels, settings, objective; resources: gpu,
# log_every).  Both FV rules use it: fv_chunk (centre neuron) and fv_channel_chunk (whole map).
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.base.gpu_slots import declared_gpus, prepare_job_device  # noqa: E402  (imports no torch)

params = snakemake.params
GPUS = prepare_job_device(params.device, declared_gpus(snakemake), params.gpu_slots)

from resstream.fv.job import run_fv_chunk  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

script_main(
    snakemake,
    lambda: run_fv_chunk(
        params.model, snakemake.wildcards.layer, params.channels, params.settings, snakemake.output[0],
        objective=params.objective, device=params.device, gpus=GPUS, log_every=snakemake.resources.log_every,
    ),
)
