# Thin: run on the device the job declares (decided before torch is imported), then render one block's
# feature FVs (resstream/dictionary/feature_fv.py) with what the rule declares.
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.base.gpu_slots import declared_gpus, prepare_job_device  # noqa: E402  (imports no torch)

params = snakemake.params
GPUS = prepare_job_device(params.device, declared_gpus(snakemake), params.gpu_slots)

from resstream.dictionary.feature_fv import feature_pictures_folder  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402

script_main(
    snakemake,
    lambda: feature_pictures_folder(
        snakemake.output.folder, model=params.model, dictionary_dir=snakemake.input.folder,
        block=snakemake.wildcards.block, o_relu=params.o_relu, count=params.features, page_channels=params.page_channels,
        dataset=params.dataset, settings=params.settings,
        device=params.device, gpus=GPUS, log_every=snakemake.resources.log_every,
    ),
)
