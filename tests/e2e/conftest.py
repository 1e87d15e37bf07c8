"""The whole local runtime: the stand-ins once per session, a Functions host per configuration.

Every test here goes through the real function app on the local host: the alert is posted to the HTTP
intake, people read e-mail from the SMTP catcher, sign in through the Entra stand-in, press buttons on
the pages, and the VM is restarted (or not) in the ARM stand-in."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from local_azure.azurite import AzuriteNotInstalled, ensure_installed
from local_azure.host.signin import sign_in
from local_azure.processes import ManagedProcess
from local_azure.stack import LocalStack, start_host_process

PLANS = Path(__file__).resolve().parent / "plans.json"
PASSWORD = "Passw0rd!"
FUNCTION_KEY = "e2e-local-function-key"


@pytest.fixture(scope="session")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    try:
        ensure_installed()
    except AzuriteNotInstalled as missing:
        pytest.skip(str(missing))
    stack = LocalStack(state_dir=tmp_path_factory.mktemp("e2e"), start_host=False).start()
    environment = pytest.MonkeyPatch()
    assert stack.certificate_authority is not None
    # People's browsers here are `requests` sessions: they trust the local CA as the app does.
    for name, value in stack.certificate_authority.client_environment().items():
        environment.setenv(name, value)
    try:
        yield stack
    finally:
        environment.undo()
        stack.stop()


@dataclass
class App:
    """The function app on a Functions host of its own, in its own process, as the runtime runs a
    worker: each configuration gets a fresh import of the app and its own environment."""

    stack: LocalStack
    base_url: str
    function_key: str
    process: ManagedProcess
    launch: Callable[[], ManagedProcess]

    def session(self, user: str) -> requests.Session:
        return sign_in(self.base_url, user, PASSWORD)

    def kill(self) -> None:
        """SIGKILL: the host dies mid-invocation, as a crashed or recycled worker does."""
        self.process.kill()

    def restart(self) -> None:
        """A new host with the same settings, against the same stand-ins and storage."""
        self.process = self.launch()


def start_app(stack: LocalStack, *, port: int | None = None, **overrides: str) -> Iterator[App]:
    """A host of the app; `port` for a second instance beside the first (they share every stand-in)."""
    port = port or stack.host_port
    settings = {**stack.settings(), "GATES_RESPONSE_PLANS": str(PLANS), "LOCAL_FUNCTION_KEYS": FUNCTION_KEY,
                **overrides}
    with tempfile.TemporaryDirectory(prefix="e2e-host-") as folder:
        local_settings = Path(folder) / "local.settings.json"
        local_settings.write_text(json.dumps({"IsEncrypted": False, "Values": settings}))
        local_settings.chmod(0o600)

        def launch() -> ManagedProcess:
            return start_host_process(local_settings, port, Path(folder) / "host.log")

        app = App(stack, f"http://127.0.0.1:{port}", FUNCTION_KEY, launch(), launch)
        try:
            yield app
        finally:
            app.process.stop()
