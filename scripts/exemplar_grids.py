# Thin: the snakemake object in, the library does the work.
import sys
sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.activations import write_exemplar_grids
from resstream.smk import script_main

script_main(
    snakemake,
    lambda cfg: write_exemplar_grids(cfg, snakemake.input.h5, cfg["results"], snakemake.threads),
)
