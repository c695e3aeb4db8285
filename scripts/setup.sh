#!/usr/bin/env bash
# Create .venv in the checkout and install gradienthide with its test tools (PyPI only), at the
# versions requirements.lock pins, every file checked against the lock's hashes (refresh the lock
# with scripts/lock.sh). GRADIENTHIDE_UNLOCKED=1 resolves pyproject.toml's ranges instead.
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
if [ "${GRADIENTHIDE_UNLOCKED:-0}" = 1 ]; then
    echo "setup: installing gradienthide and the newest dependencies pyproject.toml allows (not the lock)"
    .venv/bin/python -m pip install --quiet --progress-bar off -e '.[test]'
else
    if ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        echo "setup: warning: requirements.lock is resolved for Python 3.11; .venv has $(.venv/bin/python --version)" >&2
    fi
    echo "setup: installing the dependencies requirements.lock pins (torch is large the first time)"
    .venv/bin/python -m pip install --quiet --progress-bar off --require-hashes -r requirements.lock
    .venv/bin/python -m pip install --quiet --progress-bar off --no-deps -e .
fi
# Snakemake then starts without the SLURM plugin's scontrol probe, 9 s where no controller answers
# (gradienthide/slurm_startup.py)
.venv/bin/python -c 'import sysconfig; from pathlib import Path; from gradienthide import slurm_startup as s
Path(sysconfig.get_path("purelib"), "gradienthide_slurm_startup.pth").write_text(s.PTH_LINE)'
.venv/bin/python -c 'import torch, torchvision, open_clip, snakemake; print(f"setup: ok (torch {torch.__version__}, CUDA available: {torch.cuda.is_available()})")'
bash scripts/install-profile.sh
