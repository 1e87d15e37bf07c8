#!/usr/bin/env bash
# Installs everything the project needs, into the project: a Python virtualenv (.venv) with
# requirements-dev.txt, and Azurite from npm (local_azure/node). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# Azurite, pinned by local_azure/node/package-lock.json.
.venv/bin/python -c "from local_azure.azurite import ensure_installed; ensure_installed()"
