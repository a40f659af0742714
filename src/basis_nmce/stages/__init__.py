"""One function per pipeline stage: read inputs, call the library, write outputs atomically.

Each stage takes explicit input and output paths and a ``params`` mapping, the stage's slice
of the validated config (see :func:`basis_nmce.stages.params.stage_params`). The CLI and the
Snakemake rules both go through these functions; no rule holds logic.
"""
