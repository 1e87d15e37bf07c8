"""`python -m local_azure.entra` serves until told to stop."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]


def test_the_command_serves_discovery_and_stops_on_sigterm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = str(tmp_path / "tls" / "trust-bundle.pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", bundle)  # it overrides `verify` on this machine
    process = subprocess.Popen(
        [sys.executable, "-m", "local_azure.entra", "--port", "0", "--state-dir", str(tmp_path / "entra"),
         "--tls-dir", str(tmp_path / "tls")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        authority = first_line.rsplit(" ", 1)[-1].strip()
        assert authority.startswith("https://127.0.0.1:")
        metadata = requests.get(f"{authority}/v2.0/.well-known/openid-configuration",
                                verify=bundle, timeout=10).json()
        assert metadata["issuer"] == f"{authority}/v2.0"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
