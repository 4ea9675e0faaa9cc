# Thin: the snakemake object in, the library does the work (resstream/measure.py).
import sys
sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.measure import run_block_measurement
from resstream.smk import script_main


def work(cfg):
    return run_block_measurement(
        cfg, snakemake.wildcards.block, snakemake.params.stimulus, snakemake.input.activations, snakemake.output.csv
    )


script_main(snakemake, work)
