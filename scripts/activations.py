# Thin: the snakemake object in, the library does the work (one pass, resumable, see resstream/activations.py).
import sys
sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.activations import extract_activations
from resstream.smk import script_main

script_main(snakemake, lambda cfg: extract_activations(cfg, snakemake.output.h5))
