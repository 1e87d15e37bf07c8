#!/usr/bin/env bash
# Installs everything the project needs, into the project: a Python virtualenv (.venv) with
# requirements-dev.txt, Azurite from npm (local_azure/node), and Debian's chromium + chromium-driver for the
# browser tests. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "SRE Gates needs Python 3.11 or newer as python3; this one is $(python3 --version 2>&1)" >&2; exit 1; }
command -v npm >/dev/null || { echo "SRE Gates needs Node.js and npm on PATH (Azurite comes from npm)" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  echo "first run: installing Python packages into .venv and Azurite from npm (a few minutes, once)..." >&2
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# Azurite, pinned by local_azure/node/package-lock.json.
.venv/bin/python -c "from local_azure.azurite import ensure_installed; ensure_installed()"
# The browser tests' Chromium and its driver, from Debian (quick when they are present already).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
  else
    echo "bootstrap: chromium and chromium-driver are missing; install them (apt-get install chromium chromium-driver)" >&2
  fi
fi
