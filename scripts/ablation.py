# Thin: run on the device the job declares (decided before torch is imported), then the library
# evaluates every lesion condition in one batched pass with what the rule declares.
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.base.gpu_slots import declared_gpus, prepare_job_device  # noqa: E402  (imports no torch)

params = snakemake.params
GPUS = prepare_job_device(params.device, declared_gpus(snakemake), params.gpu_slots)

import torch  # noqa: E402

from resstream.ablation.stage import run_ablation  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

torch.set_num_threads(snakemake.threads)
run = snakemake.resources
out = snakemake.output
script_main(
    snakemake,
    lambda: run_ablation(
        out.csv, out.mix, out.png, out.pdf, model=params.model, dataset=params.dataset, activations=params.activations,
        tables=params.tables, layers=params.layers, settings=params.settings, device=params.device,
        batch_size=run.batch_size, workers=run.workers, gpus=GPUS,
    ),
)
