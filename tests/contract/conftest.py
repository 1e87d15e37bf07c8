"""Azurite's table service for the contract tests: started once per session, killed with the run
(its own process group, and a parent-death signal so even a killed pytest leaves nothing behind)."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AZURITE_TABLE = ROOT / ".local" / "node" / "node_modules" / "azurite" / "dist" / "src" / "table" / "main.js"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _die_with_parent() -> None:
    os.setsid()
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def azurite_connection_string() -> Iterator[str]:
    if not AZURITE_TABLE.exists():
        pytest.skip("Azurite is not installed: run `npm install --prefix .local/node azurite@3.35.0` (.ci/run does)")
    port = _free_port()
    with tempfile.TemporaryDirectory() as workdir:
        process = subprocess.Popen(  # noqa: S603
            [shutil.which("node") or "node", str(AZURITE_TABLE), "--tableHost", "127.0.0.1", "--tablePort", str(port),
             "--skipApiVersionCheck", "--loose", "--inMemoryPersistence"], cwd=workdir,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_die_with_parent)  # noqa: PLW1509
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if process.poll() is not None:
                        pytest.fail(f"Azurite exited: {process.stderr.read().decode() if process.stderr else ''}")
                    time.sleep(0.1)
            else:
                pytest.fail("Azurite did not start within 20 s")
            yield (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={ACCOUNT_KEY};"
                   f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture
def table_name() -> str:
    return "t" + uuid.uuid4().hex[:20]
