#!/usr/bin/env bash
# The Infrastructure Manager for the TOSCA tests (tests/support/im_server.py), in a virtual
# environment of its own: IM pins its own ansible-core and tosca-parser. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${MLAAS4HEP_IM_VENV:-.cache/im-venv}
version=${IM_VERSION:-2.0.0}
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import IM, sys; sys.exit(IM.__version__ != '$version')" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "IM==$version"
fi
