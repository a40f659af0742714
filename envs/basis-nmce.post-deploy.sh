#!/usr/bin/env bash
# Snakemake runs this once, inside the environment it has just created from basis-nmce.yaml,
# in the workflow's working directory (the repository root): install the package there without
# touching the dependencies conda resolved. Editable, so the rules run the checked-out code.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation --editable .
