"""resstream: the residual-stream study of ResNets (Longon, arXiv 2407.05340) as a library.

One subpackage per pipeline stage, named as its rule file (``rules/<stage>.smk``) and its tests:
``model`` (networks, weights, blocks, taps), ``fv`` (feature visualizations), ``activations`` (the
dataset pass), ``analysis`` (measurements, metrics, tables, figures), ``atlas`` (the unit atlas),
``compare`` (runs side by side), ``workflow`` (config, plan, paths, job machinery; rules/common.smk),
and ``data`` (image folders).  ``api`` holds the stages as plain functions for notebooks; ``cli``
the ``resstream`` command.
"""

__version__ = "0.1.0"
