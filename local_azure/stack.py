"""The whole local stack in one object: every stand-in, the app's settings, then the Functions host.

    with LocalStack() as stack:              # ports 0: free ports, as tests want
        stack.settings()                     # the app settings (names from shared/topology.py)
        stack.host.base_url, stack.mail.wait_for(...)

    python -m local_azure up                 # the README's ports, readable output, Ctrl-C stops

Start order follows the dependencies: the local CA, Azurite (and the app's tables), Service Bus, the
mail catcher, Entra ID, then ARM (it validates tokens against Entra's JWKS), and the host last (its
settings name all of the others). `stop()` runs in reverse and always reaches every part.
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_azure.azurite import AzuriteTables
from local_azure.lifecycle import Startable
from local_azure.processes import ManagedProcess, free_port, wait_for_port
from local_azure.servicebus.endpoint import STANDARD_MAX_MESSAGE_BYTES
from local_azure.smtp import MailCatcher
from local_azure.tls import LocalCertificateAuthority

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
ENTRA_FIXTURE = PACKAGE_DIR / "fixtures" / "entra.json"
SERVICE_BUS_CONFIG = PACKAGE_DIR / "config" / "servicebus.json"
AUTH_SETTINGS = PACKAGE_DIR / "config" / "authsettings.json"
EMAIL_SENDER = "sre-gates@contoso.test"
DEFAULT_AUTH_SECRET_SETTING = "MICROSOFT_PROVIDER_AUTHENTICATION_SECRET"
SRE_GATES_APP = "sre-gates"
SRE_AGENT_APP = "sre-agent"


class StackStartError(RuntimeError):
    """A part of the stack did not start; the message names it, `__cause__` holds its own error."""


@dataclass(frozen=True)
class StackPorts:
    """0 picks a free port (tests); `standard()` gives the ports in local_azure/README.md."""

    tables: int = 0
    service_bus: int = 0
    entra: int = 0
    arm: int = 0
    smtp: int = 0
    host: int = 0

    @classmethod
    def standard(cls) -> StackPorts:
        return cls(tables=10002, service_bus=5672, entra=8443, arm=8444, smtp=2525, host=7071)


def start_host_process(local_settings: Path, port: int, log_path: Path, *, project: Path = PROJECT_DIR,
                       app: str | None = None, ready_within: float = 60) -> ManagedProcess:
    """A Functions host in a process of its own (`python -m local_azure.host`), listening on `port` when this
    returns; stopped again if it does not come up. A process per host gives each a fresh import of the app,
    as the runtime gives each worker."""
    process = ManagedProcess(
        [sys.executable, "-m", "local_azure.host", "--project", str(project), *(["--app", app] if app else []),
         "--port", str(port), "--local-settings", str(local_settings), "--auth-settings", str(AUTH_SETTINGS)],
        name="functions host", cwd=project, log_path=log_path)
    process.start()
    try:
        wait_for_port("127.0.0.1", port, ready_within, process=process)
    except BaseException:
        process.stop()
        raise
    return process


def new_secret_key() -> str:
    """Base64 of 32 random bytes: the form the app takes its HMAC and AES keys in."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _client_secret(app_name: str, fixture: Path = ENTRA_FIXTURE) -> tuple[str, str]:
    directory = json.loads(fixture.read_text(encoding="utf-8"))
    for app in directory["apps"]:
        if app["name"] == app_name:
            return str(app["client_id"]), str(app["client_secrets"][0])
    raise KeyError(f"{fixture}: no app named {app_name!r}")


class LocalStack(Startable):
    def __init__(self, project_dir: Path = PROJECT_DIR, *, state_dir: Path | None = None, start_host: bool = True,
                 ports: StackPorts | None = None, persist_tables: bool = False,
                 auth_settings: Path | None = AUTH_SETTINGS, extra_settings: Mapping[str, str] | None = None,
                 arm_fixture: Path | None = None, arm_operation_polls: int = 2,
                 arm_operation_seconds: float | None = None,
                 service_bus_config: Path = SERVICE_BUS_CONFIG, max_message_bytes: int = STANDARD_MAX_MESSAGE_BYTES,
                 function_key: str | None = None, say: Callable[[str], None] | None = None) -> None:
        """`arm_fixture`: the ARM stand-in's resources, roles and resource types (default
        local_azure/fixtures/arm.json). A long-running operation answers InProgress to
        `arm_operation_polls` polls, or with `arm_operation_seconds` runs for that long.
        `service_bus_config` is an emulator-style Config.json of the queues; `max_message_bytes` the Service
        Bus tier's message size limit, which the stand-in enforces and the app is told
        (GATES_SERVICE_BUS_MAX_MESSAGE_BYTES); `function_key` the host's (default: generated)."""
        self.project_dir = Path(project_dir).resolve()
        self.state_dir = Path(state_dir) if state_dir is not None else self.project_dir / ".local"
        self.start_host = start_host
        self.ports = ports or StackPorts()
        self.persist_tables = persist_tables
        self.auth_settings = auth_settings
        self.extra_settings = dict(extra_settings or {})
        self.arm_fixture = Path(arm_fixture) if arm_fixture is not None else None
        self.arm_operation_polls = arm_operation_polls
        self.arm_operation_seconds = arm_operation_seconds
        self.service_bus_config = Path(service_bus_config)
        self.max_message_bytes = max_message_bytes
        self.function_key = function_key or secrets.token_urlsafe(32)
        self._say = say or (lambda line: None)
        # Fresh per stack: approval links and sealed credentials of an older stack must not verify here.
        self._form_signing_key = new_secret_key()
        self._credential_sealing_key = new_secret_key()
        self.certificate_authority: LocalCertificateAuthority | None = None
        self.azurite: AzuriteTables | None = None
        self.service_bus: Any = None
        self.mail: MailCatcher | None = None
        self.entra: Any = None
        self.arm: Any = None
        self.host: Any = None
        self._host_port: int | None = None
        self._stops: list[tuple[str, Callable[[], None]]] = []
        self.startup_seconds: float | None = None
        self.timings: dict[str, float] = {}

    # ----- lifecycle ----------------------------------------------------------------------------
    def start(self) -> LocalStack:
        """Returns once every part listens; on any failure, stops what had started and re-raises."""
        if self._stops:
            raise RuntimeError("the stack is already started")
        began = time.perf_counter()
        try:
            self._start_parts()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.perf_counter() - began
        return self

    def stop(self) -> None:
        errors: list[str] = []
        while self._stops:
            name, stop = self._stops.pop()
            try:
                stop()
            except Exception as error:  # one part failing to stop must not leave the others running
                errors.append(f"{name}: {error!r}")
        if errors:
            self._say("trouble stopping: " + "; ".join(errors))

    def _start_parts(self) -> None:
        from local_azure.arm import ArmStandIn
        from local_azure.entra import EntraStandIn
        from local_azure.servicebus import ServiceBusStandIn

        self.state_dir.mkdir(parents=True, exist_ok=True)
        authority = self.certificate_authority = LocalCertificateAuthority.ensure(self.state_dir / "tls")

        azurite = self.azurite = AzuriteTables(
            data_dir=self.state_dir / "azurite" if self.persist_tables else None,
            port=self.ports.tables, in_memory=not self.persist_tables)
        self._start_part("Table Storage (Azurite)", azurite.start, azurite.stop)
        self._create_tables()

        self.service_bus = ServiceBusStandIn(self.service_bus_config, port=self.ports.service_bus,
                                             max_message_bytes=self.max_message_bytes)
        self._start_part("Service Bus", self.service_bus.start, self.service_bus.stop)

        self.mail = MailCatcher(self.state_dir / "mail", port=self.ports.smtp)
        self._start_part("the mail catcher", self.mail.start, self.mail.stop)

        self.entra = EntraStandIn(ENTRA_FIXTURE, state_dir=self.state_dir / "entra", port=self.ports.entra,
                                  certificate_authority=authority)
        self._start_part("Entra ID", self.entra.start, self.entra.stop)

        self.arm = ArmStandIn(self.arm_fixture, state_dir=self.state_dir / "arm", jwks_uri=self.entra.jwks_uri,
                              port=self.ports.arm, certificate_authority=authority,
                              operation_polls=self.arm_operation_polls,
                              operation_seconds=self.arm_operation_seconds)
        self._start_part("Resource Manager", self.arm.start, self.arm.stop)

        # The app's settings carry its public URL, so the host's port is chosen before it starts (also when
        # a test starts a host of its own on `host_port`).
        self._host_port = self.ports.host or free_port()
        if self.start_host:
            from local_azure.host import FunctionsHost

            self.host = FunctionsHost(self.project_dir, settings=self.settings(), port=self._host_port,
                                      auth_settings=self.auth_settings)
            self._start_part("the Functions host", self.host.start, self.host.stop)

    def _start_part(self, name: str, start: Callable[[], object], stop: Callable[[], None]) -> None:
        self._say(f"starting {name}...")
        began = time.perf_counter()
        # Registered first: a part that fails half-way through start() may hold a port or a child process.
        self._stops.append((name, stop))
        try:
            start()
        except Exception as error:
            raise StackStartError(f"{name} could not start: {error}") from error
        self.timings[name] = time.perf_counter() - began

    def _create_tables(self) -> None:
        from azure.data.tables import TableServiceClient

        from shared.topology import Table

        assert self.azurite is not None
        with TableServiceClient.from_connection_string(self.azurite.connection_string) as service:
            for table in Table:
                service.create_table_if_not_exists(table.value)

    # ----- what the app is told -----------------------------------------------------------------
    @property
    def host_port(self) -> int:
        if self._host_port is None:
            raise RuntimeError("the stack is not started")
        return self._host_port

    @property
    def public_base_url(self) -> str:
        return f"http://127.0.0.1:{self.host_port}"

    def settings(self) -> dict[str, str]:
        """The app settings that point the app at this stack (what local.settings.json's Values would hold)."""
        if self.azurite is None or self.service_bus is None or self.entra is None or self.arm is None \
                or self.mail is None or self.certificate_authority is None:
            raise RuntimeError("the stack is not started")
        from shared.topology import SERVICE_BUS_CONNECTION, TABLES_CONNECTION

        gates_client_id, gates_secret = _client_secret(SRE_GATES_APP)
        agent_client_id, agent_secret = _client_secret(SRE_AGENT_APP)
        values = {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "AzureWebJobsStorage": self.azurite.connection_string,
            SERVICE_BUS_CONNECTION: self.service_bus.connection_string,
            TABLES_CONNECTION: self.azurite.connection_string,
            "GATES_TENANT_ID": self.entra.tenant_id,
            "GATES_AUTHORITY_HOST": self.entra.base_url,
            "GATES_CLIENT_ID": gates_client_id,
            "GATES_CLIENT_SECRET": gates_secret,
            "GATES_API_AUDIENCE": "api://sre-gates",  # the fixture's Application ID URI
            # App Service Authentication reads the same app registration's secret from a setting of its own.
            _auth_secret_setting(self.auth_settings): gates_secret,
            "GATES_AGENT_IDENTITY": "client_secret",
            "GATES_AGENT_CLIENT_ID": agent_client_id,
            "GATES_AGENT_CLIENT_SECRET": agent_secret,
            "GATES_ARM_ENDPOINT": self.arm.endpoint,
            "GATES_EMAIL_TRANSPORT": "smtp",
            "GATES_SMTP_HOST": "127.0.0.1",
            "GATES_SMTP_PORT": str(self.mail.port),
            "GATES_EMAIL_SENDER": EMAIL_SENDER,
            "GATES_FORM_SIGNING_KEY": self._form_signing_key,
            "GATES_CREDENTIAL_SEALING_KEY": self._credential_sealing_key,
            "GATES_SERVICE_BUS_MAX_MESSAGE_BYTES": str(self.max_message_bytes),
            # The local host's function key (the Functions host keeps keys outside the app settings; the
            # local host reads them from this setting, so a host started alone keeps the stack's key).
            "LOCAL_FUNCTION_KEYS": self.function_key,
            **self.certificate_authority.client_environment(),
        }
        if self._host_port is not None:
            values["GATES_PUBLIC_BASE_URL"] = self.public_base_url
        values.update(self.extra_settings)
        return values

    # ----- for people ---------------------------------------------------------------------------
    def summary(self) -> str:
        """What runs where, and what to paste where: the text `python -m local_azure up` prints."""
        if self.azurite is None or self.service_bus is None or self.entra is None or self.arm is None \
                or self.mail is None or self.certificate_authority is None:
            raise RuntimeError("the stack is not started")
        lines = [
            f"  Table Storage (Azurite)  {self.azurite.endpoint}",
            f"  Service Bus (AMQP)       amqp://127.0.0.1:{self.service_bus.port}  "
            f"queues: {', '.join(self.service_bus.queue_names)}; messages up to {self.max_message_bytes} bytes",
            f"  Entra ID                 {self.entra.authority}",
            f"      issuer {self.entra.issuer}",
            f"      jwks   {self.entra.jwks_uri}",
            f"  Resource Manager         {self.arm.endpoint}",
            f"  E-mail (SMTP catcher)    smtp://127.0.0.1:{self.mail.port}  saved to {self.state_dir / 'mail'}/",
        ]
        if self.host is not None:
            lines.append(f"  Functions host           {self.host.base_url}/api  function key {self.host.function_key}")
            lines.extend(f"      {line}" for line in _describe_functions(self.host))
        lines += ["", "App settings (names from shared/topology.py):"]
        lines += [f"  {name}={value}" for name, value in self.settings().items()]
        bundle = self.certificate_authority.trust_bundle_path
        lines += [
            "",
            "Clients trust the local CA through:",
            f"  export REQUESTS_CA_BUNDLE={bundle} SSL_CERT_FILE={bundle}",
            "Sign in as alice@contoso.test, bob@contoso.test or mallory@contoso.test, password Passw0rd!",
        ]
        return "\n".join(lines)


def _auth_secret_setting(auth_settings: Path | None) -> str:
    """The setting App Service Authentication takes the client secret from (authsettingsV2)."""
    if auth_settings is not None and auth_settings.exists():
        document = json.loads(auth_settings.read_text(encoding="utf-8"))
        registration = (document.get("properties", document).get("identityProviders", {})
                        .get("azureActiveDirectory", {}).get("registration", {}))
        if registration.get("clientSecretSettingName"):
            return str(registration["clientSecretSettingName"])
    return DEFAULT_AUTH_SECRET_SETTING


def _describe_functions(host: Any) -> list[str]:
    described = []
    for spec in getattr(host, "functions", []):
        if spec.trigger_type == "serviceBusTrigger":
            described.append(f"{spec.name}: queue {spec.queue_name}")
        elif spec.trigger_type == "httpTrigger":
            described.append(f"{spec.name}: {','.join(spec.methods)} /api/{spec.route}")
        else:
            described.append(f"{spec.name}: {spec.trigger_type}")
    return described
