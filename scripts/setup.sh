#!/usr/bin/env bash
# Installs skkalman (editable) with its test extras on a fresh machine.
# torch comes first, pinned to the CPU build this machine carries on disk: any looser
# request would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python -c "import torch" >/dev/null 2>&1; then
    python -m pip install --quiet "torch==2.13.0"
fi
python -m pip install --quiet -e ".[test]"
