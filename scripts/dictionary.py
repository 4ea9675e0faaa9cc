# Thin: run on the device the job declares (decided before torch is imported), then the library trains
# and reads one block's crosscoder (resstream/dictionary/stage.py) with what the rule declares.
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.base.gpu_slots import declared_gpus, prepare_job_device  # noqa: E402  (imports no torch)

params = snakemake.params
GPUS = prepare_job_device(params.device, declared_gpus(snakemake), params.gpu_slots)

from resstream.dictionary.stage import dictionary_block  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

script_main(
    snakemake,
    lambda: dictionary_block(
        snakemake.output.folder, model=params.model, dataset=params.dataset, on_bad_image=params.on_bad_image,
        block=snakemake.wildcards.block, o_relu=params.o_relu, section=params.section, device=params.device, gpus=GPUS,
    ),
)
