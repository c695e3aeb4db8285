#!/usr/bin/env bash
# Create .venv in the checkout and install gradienthide with its test tools (PyPI only).
# Re-running it is cheap: pip only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), f"Python 3.11+ needed, found {sys.version}"'
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
echo "setup: installing gradienthide and its dependencies (torch is large the first time)"
.venv/bin/python -m pip install --quiet --progress-bar off -e '.[test]'
.venv/bin/python -c 'import torch, torchvision, open_clip, snakemake; print(f"setup: ok (torch {torch.__version__}, CUDA available: {torch.cuda.is_available()})")'
bash scripts/install-profile.sh
