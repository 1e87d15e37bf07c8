"""The local stack: every stand-in up, the app's settings pointing at them, and nothing left after it stops."""

from __future__ import annotations

import base64
import json
import os
import queue
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import msal
import pytest
import requests
from azure.data.tables import TableServiceClient
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from local_azure.processes import live_processes
from local_azure.servicebus import QueueSettings, emulator_config
from local_azure.stack import PROJECT_DIR, LocalStack, StackPorts, StackStartError
from shared.topology import SETTINGS, Queue, Table

ROOT = Path(__file__).resolve().parents[2]
SUBSCRIPTION = "2b5c3f6e-0000-4000-8000-0000000005b1"
ARM_SCOPE = "https://management.azure.com/.default"

pytestmark = pytest.mark.azurite


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(state_dir=tmp_path_factory.mktemp("stack"), start_host=False) as stack:
        yield stack


@pytest.fixture
def trusting_local_ca(stand_ins: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in stand_ins.certificate_authority.client_environment().items():  # type: ignore[union-attr]
        monkeypatch.setenv(name, value)


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def port_of(connection_string: str) -> int:
    endpoint = next(part for part in connection_string.split(";") if part.startswith(("TableEndpoint=", "Endpoint=")))
    return int(endpoint.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


# ----- the settings ------------------------------------------------------------------------------------

def test_every_required_app_setting_is_given(stand_ins: LocalStack) -> None:
    required = {setting.name for setting in SETTINGS if setting.required}
    assert required <= set(stand_ins.settings())


def test_the_settings_choose_the_local_transports(stand_ins: LocalStack) -> None:
    settings = stand_ins.settings()
    assert settings["GATES_AGENT_IDENTITY"] == "client_secret"
    assert settings["GATES_EMAIL_TRANSPORT"] == "smtp"
    assert settings["GATES_PUBLIC_BASE_URL"] == f"http://127.0.0.1:{stand_ins.host_port}"


def test_the_generated_keys_are_32_random_bytes_in_base64(stand_ins: LocalStack) -> None:
    settings = stand_ins.settings()
    link, sealing = settings["GATES_FORM_SIGNING_KEY"], settings["GATES_CREDENTIAL_SEALING_KEY"]
    assert len(base64.b64decode(link, validate=True)) == 32
    assert len(base64.b64decode(sealing, validate=True)) == 32
    assert link != sealing


def test_the_settings_carry_the_trust_bundle_of_the_local_ca(stand_ins: LocalStack) -> None:
    bundle = stand_ins.settings()["REQUESTS_CA_BUNDLE"]
    assert "SRE Gates local stand-in CA" not in bundle  # a path, not the certificates themselves
    assert Path(bundle).read_text().count("BEGIN CERTIFICATE") >= 1
    assert stand_ins.settings()["SSL_CERT_FILE"] == bundle


# ----- each setting reaches its stand-in, through the real client ----------------------------------------

def test_the_apps_tables_exist_in_azurite(stand_ins: LocalStack) -> None:
    service = TableServiceClient.from_connection_string(stand_ins.settings()["TablesConnection"])
    assert {table.name for table in service.list_tables()} >= {table.value for table in Table}


def test_every_queue_of_the_topology_takes_a_message(stand_ins: LocalStack) -> None:
    with ServiceBusClient.from_connection_string(stand_ins.settings()["ServiceBusConnection"]) as client:
        for name in Queue:
            with client.get_queue_sender(name.value) as sender:
                sender.send_messages(ServiceBusMessage(b"{}", message_id=f"stack-{name.value}"))
    assert all(stand_ins.service_bus.queue_depth(name.value) >= 1 for name in Queue)


def test_the_agent_identity_gets_an_arm_token_that_arm_accepts(stand_ins: LocalStack, trusting_local_ca: None) -> None:
    settings = stand_ins.settings()
    agent = msal.ConfidentialClientApplication(
        settings["GATES_AGENT_CLIENT_ID"], client_credential=settings["GATES_AGENT_CLIENT_SECRET"],
        authority=f"{settings['GATES_AUTHORITY_HOST']}/{settings['GATES_TENANT_ID']}", instance_discovery=False)
    token = agent.acquire_token_for_client([ARM_SCOPE])
    assert "access_token" in token, token
    answer = requests.get(f"{settings['GATES_ARM_ENDPOINT']}/subscriptions/{SUBSCRIPTION}?api-version=2022-12-01",
                          headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["subscriptionId"] == SUBSCRIPTION


def test_the_app_registration_secret_is_accepted_by_entra(stand_ins: LocalStack, trusting_local_ca: None) -> None:
    settings = stand_ins.settings()
    app = msal.ConfidentialClientApplication(
        settings["GATES_CLIENT_ID"], client_credential=settings["MICROSOFT_PROVIDER_AUTHENTICATION_SECRET"],
        authority=f"{settings['GATES_AUTHORITY_HOST']}/{settings['GATES_TENANT_ID']}", instance_discovery=False)
    assert "access_token" in app.acquire_token_for_client([ARM_SCOPE])


def test_mail_sent_to_the_smtp_setting_is_caught(stand_ins: LocalStack) -> None:
    settings = stand_ins.settings()
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings["GATES_EMAIL_SENDER"], "alice@contoso.test", "hi"
    message.set_content("through the stack")
    with smtplib.SMTP(settings["GATES_SMTP_HOST"], int(settings["GATES_SMTP_PORT"]), timeout=10) as client:
        client.send_message(message)
    assert stand_ins.mail.wait_for(lambda m: m["Subject"] == "hi", timeout=10)["To"] == "alice@contoso.test"


def test_the_summary_names_every_part(stand_ins: LocalStack) -> None:
    summary = stand_ins.summary()
    for part in ("Azurite", "Service Bus", "Entra ID", "Resource Manager", "SMTP", "TablesConnection="):
        assert part in summary


# ----- lifecycle ---------------------------------------------------------------------------------------

def test_stopping_leaves_no_process_and_no_port_behind(tmp_path: Path) -> None:
    before = set(map(id, live_processes()))
    stack = LocalStack(state_dir=tmp_path, start_host=False).start()
    settings = stack.settings()
    ports = [port_of(settings["TablesConnection"]), port_of(settings["ServiceBusConnection"]),
             stack.entra.port, stack.arm.port, stack.mail.port]
    stack.stop()
    assert set(map(id, live_processes())) == before
    assert all(refuses_connections(port) for port in ports)


def test_a_part_that_cannot_start_stops_the_parts_started_before_it(tmp_path: Path) -> None:
    before = set(map(id, live_processes()))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        stack = LocalStack(state_dir=tmp_path, start_host=False, ports=StackPorts(entra=taken.getsockname()[1]))
        with pytest.raises(StackStartError, match=r"Entra ID could not start: .*in use"):
            stack.start()
    assert set(map(id, live_processes())) == before
    assert stack.azurite is not None
    assert not stack.azurite.running


def test_two_stacks_on_free_ports_run_side_by_side(stand_ins: LocalStack, tmp_path: Path) -> None:
    with LocalStack(state_dir=tmp_path, start_host=False) as other:
        assert other.settings()["TablesConnection"] != stand_ins.settings()["TablesConnection"]
        assert other.settings()["GATES_FORM_SIGNING_KEY"] != stand_ins.settings()["GATES_FORM_SIGNING_KEY"]


def test_the_arm_fixture_and_operation_time_are_stack_options(tmp_path: Path) -> None:
    fixture = json.loads((PROJECT_DIR / "local_azure" / "fixtures" / "arm.json").read_text())
    scale_set = next(r for r in fixture["resources"] if r["name"] == "vmss-workers")
    scale_set["sku"]["capacity"] = 7
    path = tmp_path / "arm.json"
    path.write_text(json.dumps(fixture))
    with LocalStack(state_dir=tmp_path / "state", start_host=False, arm_fixture=path,
                    arm_operation_seconds=1.5) as stack:
        assert stack.arm.resource(scale_set_id(fixture))["capacity"] == 7
        assert stack.arm.state.operation_seconds == 1.5


def test_up_takes_the_arm_fixture_and_operation_time() -> None:
    from local_azure.__main__ import _parser

    args = _parser().parse_args(["up", "--arm-fixture", "x.json", "--arm-operation-seconds", "3",
                                 "--arm-operation-polls", "0"])
    assert (args.arm_fixture, args.arm_operation_seconds, args.arm_operation_polls) == (Path("x.json"), 3.0, 0)


def scale_set_id(fixture: dict[str, Any]) -> str:
    entry = next(r for r in fixture["resources"] if r["name"] == "vmss-workers")
    return (f"/subscriptions/{entry['subscriptionId']}/resourceGroups/{entry['resourceGroup']}/providers/"
            f"{entry['type']}/{entry['name']}")


def test_with_the_host_the_app_answers_on_the_public_base_url(tmp_path: Path) -> None:
    with LocalStack(state_dir=tmp_path) as stack:
        base_url = stack.settings()["GATES_PUBLIC_BASE_URL"]
        assert stack.host.base_url == base_url
        answer = requests.get(f"{base_url}/api/health", timeout=10)
        assert answer.status_code == 200
        assert answer.json() == {"status": "ok"}
        assert "Functions host" in stack.summary()


# ----- python -m local_azure up ----------------------------------------------------------------------------

class Up:
    """`python -m local_azure up` in a subprocess, its output read on a thread so nothing blocks."""

    def __init__(self, state_dir: Path, *options: str) -> None:
        self.state_dir = state_dir
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local_azure", "up", "--any-ports", "--no-host", "--state-dir", str(state_dir),
             *options],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for_line(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.output.append(line)
            if text in line:
                return
        self.process.kill()
        pytest.fail(f"no line with {text!r}; output:\n{''.join(self.output)}")

    def settings(self) -> dict[str, str]:
        return json.loads((self.state_dir / "stack-settings.json").read_text())

    def end(self, how: signal.Signals) -> int:
        self.process.send_signal(how)
        return self.process.wait(timeout=60)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    running = Up(tmp_path)
    running.wait_for_line("Ctrl-C stops the stack")
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait(timeout=30)


def test_up_prints_the_connection_strings_and_the_startup_time(up: Up) -> None:
    printed = "".join(up.output)
    assert "local stack up in" in printed
    assert f"TablesConnection={up.settings()['TablesConnection']}" in printed
    assert f"ServiceBusConnection={up.settings()['ServiceBusConnection']}" in printed


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_up_stops_cleanly_on_ctrl_c_and_sigterm(up: Up, how: signal.Signals) -> None:
    tables_port = port_of(up.settings()["TablesConnection"])
    assert up.end(how) == 0
    assert refuses_connections(tables_port)
    assert not (up.state_dir / "stack-settings.json").exists()


def test_azurite_dies_with_up_when_up_is_killed(up: Up) -> None:
    tables_port = port_of(up.settings()["TablesConnection"])
    up.end(signal.SIGKILL)
    deadline = time.monotonic() + 15
    while not refuses_connections(tables_port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert refuses_connections(tables_port)


def test_the_plugins_local_stack_fixture_runs_the_app(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["local_azure.pytest_plugin"]\n')
    (tmp_path / "test_nested.py").write_text(
        "import requests\n"
        "def test_health(local_stack):\n"
        "    assert requests.get(local_stack.host.base_url + '/api/health', timeout=10).json() == {'status': 'ok'}\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_up_takes_the_service_bus_queues_and_message_size_as_options(tmp_path: Path) -> None:
    config = tmp_path / "queues.json"
    config.write_text(json.dumps(emulator_config([QueueSettings("alerts"), QueueSettings("extra")])))
    running = Up(tmp_path / "state", "--servicebus-config", str(config), "--max-message-bytes", "1048576",
                 "--function-key", "key-from-the-command-line")
    try:
        running.wait_for_line("Ctrl-C stops the stack")
        printed = "".join(running.output)
        assert "queues: alerts, extra; messages up to 1048576 bytes" in printed
        settings = running.settings()
        assert settings["GATES_SERVICE_BUS_MAX_MESSAGE_BYTES"] == "1048576"
        assert settings["LOCAL_FUNCTION_KEYS"] == "key-from-the-command-line"
    finally:
        running.end(signal.SIGTERM)


def test_up_prints_each_e_mails_links_whole_as_it_arrives(up: Up) -> None:
    settings = up.settings()
    link = f"{settings['GATES_PUBLIC_BASE_URL']}/api/approvals/{'r' * 32}/consent?token={'t' * 100}"
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "sre-gates@contoso.test", "alice@contoso.test", "Consent"
    message.set_content(f"Review and decide: {link}\n", cte="quoted-printable")
    with smtplib.SMTP(settings["GATES_SMTP_HOST"], int(settings["GATES_SMTP_PORT"]), timeout=10) as client:
        client.send_message(message)
    up.wait_for_line("e-mail to alice@contoso.test: Consent")
    up.wait_for_line(link)


def test_the_host_starts_alone_against_a_running_stack_and_again_after_it_is_killed(up: Up) -> None:
    settings = up.settings()
    base_url = settings["GATES_PUBLIC_BASE_URL"]
    for _ in range(2):
        host = subprocess.Popen(
            [sys.executable, "-m", "local_azure", "host", "--settings", str(up.state_dir / "stack-settings.json")],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        try:
            assert host.stdout is not None
            for line in host.stdout:
                if "function key" in line:
                    assert settings["LOCAL_FUNCTION_KEYS"] in line  # the stack's key: callers keep theirs
                    break
            assert requests.get(f"{base_url}/api/health", timeout=10).status_code == 200
            refused = requests.post(f"{base_url}/api/alerts", data=b"{}", timeout=10,
                                    headers={"x-functions-key": settings["LOCAL_FUNCTION_KEYS"]})
            assert refused.status_code == 400  # past the key check: the app read the body and said why
        finally:
            host.kill()
            host.wait(timeout=30)
