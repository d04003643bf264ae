#!/usr/bin/env bash
# The project's virtual environment (.venv) with both distributions installed editable:
# mlaas4hep (service side) and mlaas4hep-cli (operator side). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# PyTorch first, pinned: this machine keeps that CPU build on disk, while an open range would
# pull a multi-GB CUDA build from the registry.
.venv/bin/python -m pip install --quiet "torch==${TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install --quiet -e "./mlaas4hep[all,test]" -e ./cli
