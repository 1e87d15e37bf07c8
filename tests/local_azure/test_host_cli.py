"""`python -m local_azure.host`: runs the app in the foreground until SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.local_azure.sample_app.harness import APP_REFERENCE, SAMPLE_APP, SAMPLE_LOCAL_SETTINGS

pytestmark = pytest.mark.timeout(60)
PROJECT_ROOT = Path(__file__).parents[2]
STARTED = re.compile(r"HTTP on (http://127\.0\.0\.1:\d+)")


def test_the_cli_serves_the_app_and_stops_cleanly_on_sigterm() -> None:
    command = [sys.executable, "-m", "local_azure.host", "--project", str(SAMPLE_APP), "--app", APP_REFERENCE,
               "--port", "0", "--local-settings", str(SAMPLE_LOCAL_SETTINGS),
               "--setting", "SAMPLE_SERVICEBUS=Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v"]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True)
    try:
        base_url = None
        deadline = time.monotonic() + 30
        while base_url is None and time.monotonic() < deadline and process.stderr is not None:
            line = process.stderr.readline()
            if not line:
                break
            found = STARTED.search(line)
            base_url = found.group(1) if found else None
        assert base_url is not None, "the host never said where it listens"
        # Keep reading its log so a full pipe never blocks the host.
        threading.Thread(target=lambda: [None for _ in process.stderr or ()], daemon=True).start()

        assert requests.get(f"{base_url}/api/whoami", timeout=10).status_code == 200

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        if process.stderr is not None:
            process.stderr.close()
