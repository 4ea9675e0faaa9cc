# Thin: measurement table in, metric table out (resstream/metrics.py, resstream/analysis.py).
import sys
sys.path.insert(0, snakemake.scriptdir + "/..")  # the library, also inside a conda env
from resstream.analysis import derive_table
from resstream.smk import script_main


def work(cfg):
    return derive_table(snakemake.input.csv, snakemake.output.csv, snakemake.params.analysis)


script_main(snakemake, work)
