#!/usr/bin/env bash
# Installs everything the project needs, into the project: a Python virtualenv (.venv) with
# requirements-dev.txt, and Azurite from npm (.local/node). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
if [ ! -f .local/node/node_modules/azurite/dist/src/table/main.js ]; then
  command -v npm >/dev/null || { echo "npm is needed to install Azurite (the Table Storage emulator)" >&2; exit 1; }
  npm install --prefix .local/node --no-audit --no-fund --silent azurite@3.35.0
fi
