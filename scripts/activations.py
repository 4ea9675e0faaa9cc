# Thin: run on the device the job declares (decided before torch is imported), then the library
# makes the one pass (resumable) with what the rule declares.
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.base.gpu_slots import declared_gpus, prepare_job_device  # noqa: E402  (imports no torch)

params = snakemake.params
GPUS = prepare_job_device(params.device, declared_gpus(snakemake), params.gpu_slots)

from resstream.activations.stream import extract_activations  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

run = snakemake.resources
script_main(
    snakemake,
    lambda: extract_activations(
        snakemake.output.h5, model=params.model, dataset=params.dataset, on_bad_image=params.on_bad_image,
        layers=params.layers, spatial_layers=params.spatial_layers, topk=params.topk, o_relu=params.o_relu,
        batch_size=run.batch_size, workers=run.workers, log_every=run.log_every, device=params.device, gpus=GPUS,
    ),
)
