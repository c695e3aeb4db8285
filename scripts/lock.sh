#!/usr/bin/env bash
# Refresh requirements.lock (every package gradienthide and its test tools install, pinned with
# their sha256 hashes) from pyproject.toml, then envs/gradienthide.yaml from the lock:
#
#   bash scripts/lock.sh                          # after editing pyproject's dependencies
#   bash scripts/lock.sh --upgrade                # move every pin to the newest release
#   bash scripts/lock.sh --upgrade-package torch  # or one package
#
# uv resolves for a target platform (Linux x86-64, Python 3.11) from any machine and writes
# every artifact's hash; without --upgrade it keeps the lock's existing pins where they still fit.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/uv ]; then
    .venv/bin/python -m pip install --quiet uv==0.13.9
fi
.venv/bin/uv pip compile pyproject.toml --extra test --generate-hashes --quiet \
    --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --custom-compile-command "bash scripts/lock.sh" -o requirements.lock "$@"
# uv rewrites the whole file: put the note on torch's builds back above its header
{
    echo "# Linux x86-64, Python 3.11. PyPI's Linux torch wheel is the CUDA build, which also runs on a"
    echo "# CPU (without a GPU it uses none of the nvidia-* libraries): one lock serves CPU and CUDA machines."
    echo "# Install: .venv/bin/python -m pip install --require-hashes -r requirements.lock"
    cat requirements.lock
} > requirements.lock.tmp
mv requirements.lock.tmp requirements.lock
.venv/bin/python -m gradienthide.cli conda-env --lock requirements.lock --pyproject pyproject.toml -o envs/gradienthide.yaml
echo "lock: requirements.lock ($(grep -c '^[A-Za-z0-9]' requirements.lock) packages) and envs/gradienthide.yaml written"
