# Thin: the snakemake object in, the library does the work.
import sys
sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.card import write_model_card
from resstream.smk import script_main

script_main(snakemake, lambda cfg: write_model_card(cfg, snakemake.output.json, snakemake.output.csv))
