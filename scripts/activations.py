# Thin: pin a GPU (before torch is imported), then the library makes the one pass (resumable).
import os
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.gpu_slots import pin_gpu  # noqa: E402  (imports no torch)

if snakemake.config["model"]["device"] != "cpu":
    pin_gpu(os.path.join(snakemake.config["results"], ".gpu_slots"))

from resstream.activations import extract_activations  # noqa: E402
from resstream.smk import script_main  # noqa: E402

script_main(snakemake, lambda cfg: extract_activations(cfg, snakemake.output.h5))
