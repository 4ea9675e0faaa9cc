# Thin: run on the device the job declares (decided before torch is imported), then render one block's
# feature FVs and exemplar grids (resstream/dictionary/feature_fv.py) with what the rule declares.
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.base.gpu_slots import declared_gpus, prepare_job_device  # noqa: E402  (imports no torch)

params = snakemake.params
GPUS = prepare_job_device(params.device, declared_gpus(snakemake), params.gpu_slots)

from resstream.dictionary.feature_fv import feature_pictures_folder  # noqa: E402
from resstream.workflow.job_runner import script_main  # noqa: E402


def pictures():
    """The block's feature FVs and exemplar grids, into the rule's output folder."""
    return feature_pictures_folder(
        snakemake.output.folder, model=params.model, dictionary_dir=snakemake.input.folder, dataset=params.dataset,
        block=snakemake.wildcards.block, o_relu=params.o_relu, count=params.features, page_channels=params.page_channels,
        settings=params.settings, device=params.device, gpus=GPUS, log_every=snakemake.resources.log_every,
    )


script_main(snakemake, pictures)
