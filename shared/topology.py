"""The Azure resources the app expects: queues, tables and settings, in one place.

`infra/` declares each of them and the local runtime creates them; tests hold the three together.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Queue(StrEnum):
    ALERTS = "alerts"
    CONSENT = "consent"
    ATTEMPT = "attempt"
    ELEVATION = "elevation"
    EXECUTION = "execution"
    DEADLINES = "deadlines"
    NOTIFICATIONS = "notifications"


@dataclass(frozen=True)
class QueueProperties:
    max_delivery_count: int = 10
    lock_duration_seconds: int = 60
    requires_duplicate_detection: bool = True
    duplicate_detection_window_seconds: int = 600
    dead_lettering_on_message_expiration: bool = True


# ARM calls (and their long-running operations) run inside the attempt and execution handlers.
QUEUE_PROPERTIES: dict[Queue, QueueProperties] = {
    Queue.ALERTS: QueueProperties(),
    Queue.CONSENT: QueueProperties(),
    Queue.ATTEMPT: QueueProperties(lock_duration_seconds=300),
    Queue.ELEVATION: QueueProperties(),
    Queue.EXECUTION: QueueProperties(lock_duration_seconds=300),
    Queue.DEADLINES: QueueProperties(),
    Queue.NOTIFICATIONS: QueueProperties(),
}


class Table(StrEnum):
    RUNS = "runs"  # one partition per run: the run (with its steps, requests and outbox) and its audit
    RUN_INDEX = "runindex"  # open runs, ended runs by state and time, runs whose outbox waits for a resend
    CORRELATIONS = "correlations"  # open run per (alert rule, target resource)
    REJECTED_ALERTS = "rejectedalerts"  # alerts that could not be read, with the reason
    ALERT_STATUS = "alertstatus"  # each accepted alert by its key: the runs it started or joined, or why none
    LIMITS = "limits"  # blast-radius counters: one entity per counter, its members claimed on the ETag
    KILL_SWITCH = "killswitch"  # the kill switch (one entity) and the audit of every throw and lift


SERVICE_BUS_CONNECTION = "ServiceBusConnection"
TABLES_CONNECTION = "TablesConnection"


class SettingKind(StrEnum):
    """How a setting's text becomes a value; `shared/settings.py` parses each kind."""

    TEXT = "text"
    URL = "url"  # a trailing slash is dropped
    MINUTES = "minutes"
    PORT = "port"
    MODE = "mode"  # review or autonomous
    KEY = "key"  # a secret used as bytes
    BYTES = "bytes"  # a size in bytes
    CONNECTION = "connection"  # a connection string, or its identity-based `__` form
    SWITCH = "switch"  # on / true / 1 (engaged), off / false / 0 (not)


@dataclass(frozen=True)
class Setting:
    name: str
    required: bool
    secret: bool = False
    default: str | None = None
    description: str = ""
    attr: str = ""  # the `Settings` attribute it fills; empty for a setting the app only passes on
    kind: SettingKind = SettingKind.TEXT


K = SettingKind

SETTINGS: tuple[Setting, ...] = (
    Setting(SERVICE_BUS_CONNECTION, True, attr="servicebus", kind=K.CONNECTION, description=(
        "Service Bus: a connection string locally; in Azure `ServiceBusConnection__fullyQualifiedNamespace` "
        "(managed identity)")),
    Setting(TABLES_CONNECTION, True, attr="tables", kind=K.CONNECTION, description=(
        "Table Storage: a connection string locally; in Azure `TablesConnection__tableServiceUri` "
        "(managed identity)")),
    Setting("GATES_TENANT_ID", True, attr="tenant_id", description="Entra tenant of the app registration"),
    Setting("GATES_AUTHORITY_HOST", False, default="https://login.microsoftonline.com", attr="authority_host",
            kind=K.URL, description="Entra authority host"),
    Setting("GATES_CLIENT_ID", True, attr="client_id",
            description="app registration (client) id: validates users, performs OBO"),
    Setting("GATES_CLIENT_SECRET", True, secret=True, attr="client_secret",
            description="app registration credential (Key Vault reference in Azure)"),
    Setting("GATES_AGENT_IDENTITY", False, default="managed_identity", attr="agent_identity",
            description="`managed_identity` in Azure, `client_secret` against the local Entra stand-in"),
    Setting("GATES_AGENT_CLIENT_ID", False, attr="agent_client_id",
            description="client id of a user-assigned identity, or of the local agent app"),
    Setting("GATES_AGENT_CLIENT_SECRET", False, secret=True, attr="agent_client_secret",
            description="local runtime only"),
    Setting("GATES_ARM_ENDPOINT", False, default="https://management.azure.com", attr="arm_endpoint", kind=K.URL,
            description="Azure Resource Manager endpoint"),
    Setting("GATES_PUBLIC_BASE_URL", True, attr="public_base_url", kind=K.URL,
            description="base URL of the app, for the links in e-mails"),
    Setting("GATES_FORM_SIGNING_KEY", True, secret=True, attr="form_signing_key", kind=K.KEY,
            description="HMAC key for decision-form tokens (Key Vault reference in Azure)"),
    Setting("GATES_CREDENTIAL_SEALING_KEY", True, secret=True, attr="credential_sealing_key",
            description="AES key sealing a granted user assertion until its one use (Key Vault reference)"),
    Setting("GATES_ACTION_CATALOG", False, default="config/actions.json",
            description="the action catalog: what runbooks may ask ARM to do (loaded before the plans)"),
    Setting("GATES_RESPONSE_PLANS", False, default="config/response-plans.json",
            description="incident response plans file (read at start-up, before the other settings)"),
    Setting("GATES_AUTONOMY_CEILING", False, default="review", attr="autonomy_ceiling", kind=K.MODE,
            description="`review` caps every plan at review; `autonomous` lets plans run autonomously"),
    Setting("GATES_SHADOW_MODE", False, default="false", attr="shadow_mode", kind=K.SWITCH,
            description="`true` runs every plan in shadow mode: decisions are recorded, nothing acts, no one is "
                        "asked (the plan file's `guardrails.shadow` does the same, per file or per plan)"),
    Setting("GATES_KILL_SWITCH", False, default="off", attr="kill_switch", kind=K.SWITCH,
            description="`on` stops every new ARM call (runs pause) until it is turned off again (the app "
                        "restarts with the change); `POST /api/kill-switch` cannot lift it"),
    Setting("GATES_KILL_SWITCH_REASON", False, attr="kill_switch_reason",
            description="why GATES_KILL_SWITCH is on, shown on every paused run and in the audit"),
    Setting("GATES_CORRELATION_COOLDOWN_MINUTES", False, default="180", attr="correlation_cooldown",
            kind=K.MINUTES),
    Setting("GATES_CONSENT_TIMEOUT_MINUTES", False, default="30", attr="consent_timeout", kind=K.MINUTES),
    Setting("GATES_CREDENTIAL_TIMEOUT_MINUTES", False, default="15", attr="credential_timeout", kind=K.MINUTES),
    Setting("GATES_EMAIL_TRANSPORT", False, default="acs", attr="email_transport",
            description="`acs` in Azure, `smtp` locally"),
    Setting("GATES_EMAIL_SENDER", True, attr="email_sender", description="From address of notifications"),
    Setting("GATES_ACS_ENDPOINT", False, attr="acs_endpoint",
            description="Azure Communication Services endpoint (managed identity)"),
    Setting("GATES_SMTP_HOST", False, default="localhost", attr="smtp_host"),
    Setting("GATES_SMTP_PORT", False, default="2525", attr="smtp_port", kind=K.PORT),
    Setting("GATES_SERVICE_BUS_MAX_MESSAGE_BYTES", False, default="262144", attr="max_message_bytes", kind=K.BYTES,
            description="the Service Bus tier's message size limit: 262144 (256 KB) on Standard, the entity's "
                        "maximum (1 MB to 100 MB) on Premium; the intake refuses an alert too large to queue"),
    Setting("GATES_ALERT_WEBHOOK_AUDIENCE", False, attr="alert_webhook_audience",
            description="when set, the alert intake also requires an Entra token with this audience "
                        "(action group secure webhook)"),
    Setting("GATES_API_AUDIENCE", False, attr="api_audience",
            description="the app registration's Application ID URI, accepted (with the client id) as the "
                        "audience of an agent's token; default api://<client id>"),
    Setting("APPLICATIONINSIGHTS_CONNECTION_STRING", False, attr="appinsights_connection_string",
            description="when set, logs and audit events go to Application Insights"),
    Setting("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", False, attr="appinsights_authentication",
            description="`Authorization=AAD`: telemetry is sent with the managed identity (local auth is off)"),
)
