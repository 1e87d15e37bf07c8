#!/usr/bin/env bash
# The main job: set everything up on a fresh machine, bring the local stack up, play the scenario end to end
# (alert → consent → 403 → credential grant → OBO → VM restarted → credential discarded; then an agent proposes
# "scale the workers to 4" through MCP for alice, who consents and grants), print the timelines.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m local_azure demo "$@"
