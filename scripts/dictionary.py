# Thin: run on the device the job declares (decided before torch is imported), then the library trains
# and reads one block's crosscoder, or one network stage's (rule dictionary_stage), with what the rule
# declares (resstream/dictionary/stage.py).
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.base.gpu_slots import declared_gpus, prepare_job_device  # noqa: E402  (imports no torch)

params = snakemake.params
GPUS = prepare_job_device(params.device, declared_gpus(snakemake), params.gpu_slots)

from resstream.dictionary.stage import dictionary_block, dictionary_stage_group  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

common = dict(model=params.model, dataset=params.dataset, on_bad_image=params.on_bad_image, o_relu=params.o_relu,
              section=params.section, device=params.device, gpus=GPUS)
if snakemake.rule == "dictionary_stage":  # dictionary.scope: stage, one job per network stage
    job = lambda: dictionary_stage_group(snakemake.output.folder, stage_blocks=params.stage_blocks, **common)  # noqa: E731
else:
    job = lambda: dictionary_block(snakemake.output.folder, block=snakemake.wildcards.block, **common)  # noqa: E731
script_main(snakemake, job)
