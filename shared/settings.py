"""The app's settings, read once from the environment (App Settings in Azure, local.settings.json here)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.core.model import Mode
from shared.topology import SERVICE_BUS_CONNECTION, SETTINGS, TABLES_CONNECTION

APP_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(Exception):
    pass


def response_plans_path(env: Mapping[str, str] | None = None) -> Path:
    """GATES_RESPONSE_PLANS, relative to the app's folder unless absolute. Read at import (the plans are
    validated at start-up), before the other settings are needed."""
    env = os.environ if env is None else env
    path = Path(env.get("GATES_RESPONSE_PLANS") or "config/response-plans.json")
    return path if path.is_absolute() else APP_ROOT / path


@dataclass(frozen=True)
class Settings:
    servicebus_connection_string: str | None
    servicebus_namespace: str | None
    tables_connection_string: str | None
    tables_endpoint: str | None
    tenant_id: str
    authority_host: str
    client_id: str
    client_secret: str
    agent_identity: str
    agent_client_id: str | None
    agent_client_secret: str | None
    arm_endpoint: str
    public_base_url: str
    form_signing_key: bytes
    credential_sealing_key: str
    autonomy_ceiling: Mode
    correlation_cooldown: dt.timedelta
    consent_timeout: dt.timedelta
    credential_timeout: dt.timedelta
    email_transport: str
    email_sender: str
    acs_endpoint: str | None
    smtp_host: str
    smtp_port: int
    alert_webhook_audience: str | None
    appinsights_connection_string: str | None
    appinsights_authentication: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        defaults = {s.name: s.default for s in SETTINGS if s.default is not None}

        def get(name: str) -> str | None:
            value = env.get(name) or defaults.get(name)
            return value.strip() if value else None

        def need(name: str) -> str:
            value = get(name)
            if not value:
                raise SettingsError(f"app setting {name} is required and not set")
            return value

        def minutes(name: str) -> dt.timedelta:
            try:
                return dt.timedelta(minutes=float(need(name)))
            except ValueError:
                raise SettingsError(f"app setting {name} must be a number of minutes") from None

        sb = get(SERVICE_BUS_CONNECTION)
        sb_namespace = get(f"{SERVICE_BUS_CONNECTION}__fullyQualifiedNamespace")
        if not (sb or sb_namespace):
            raise SettingsError(f"set {SERVICE_BUS_CONNECTION} (connection string) or "
                                f"{SERVICE_BUS_CONNECTION}__fullyQualifiedNamespace (managed identity)")
        tables = get(TABLES_CONNECTION)
        tables_endpoint = get(f"{TABLES_CONNECTION}__tableServiceUri")
        if not (tables or tables_endpoint):
            raise SettingsError(f"set {TABLES_CONNECTION} (connection string) or "
                                f"{TABLES_CONNECTION}__tableServiceUri (managed identity)")
        try:
            ceiling = Mode(need("GATES_AUTONOMY_CEILING"))
        except ValueError:
            raise SettingsError("GATES_AUTONOMY_CEILING must be review or autonomous") from None
        if ceiling is Mode.READ_ONLY:
            raise SettingsError("GATES_AUTONOMY_CEILING must be review or autonomous")
        return cls(
            servicebus_connection_string=sb, servicebus_namespace=sb_namespace,
            tables_connection_string=tables, tables_endpoint=tables_endpoint,
            tenant_id=need("GATES_TENANT_ID"), authority_host=need("GATES_AUTHORITY_HOST"),
            client_id=need("GATES_CLIENT_ID"), client_secret=need("GATES_CLIENT_SECRET"),
            agent_identity=need("GATES_AGENT_IDENTITY"), agent_client_id=get("GATES_AGENT_CLIENT_ID"),
            agent_client_secret=get("GATES_AGENT_CLIENT_SECRET"), arm_endpoint=need("GATES_ARM_ENDPOINT"),
            public_base_url=need("GATES_PUBLIC_BASE_URL").rstrip("/"),
            form_signing_key=need("GATES_FORM_SIGNING_KEY").encode(),
            credential_sealing_key=need("GATES_CREDENTIAL_SEALING_KEY"),
            autonomy_ceiling=ceiling,
            correlation_cooldown=minutes("GATES_CORRELATION_COOLDOWN_MINUTES"),
            consent_timeout=minutes("GATES_CONSENT_TIMEOUT_MINUTES"),
            credential_timeout=minutes("GATES_CREDENTIAL_TIMEOUT_MINUTES"),
            email_transport=need("GATES_EMAIL_TRANSPORT"), email_sender=need("GATES_EMAIL_SENDER"),
            acs_endpoint=get("GATES_ACS_ENDPOINT"), smtp_host=need("GATES_SMTP_HOST"),
            smtp_port=int(need("GATES_SMTP_PORT")), alert_webhook_audience=get("GATES_ALERT_WEBHOOK_AUDIENCE"),
            appinsights_connection_string=get("APPLICATIONINSIGHTS_CONNECTION_STRING"),
            appinsights_authentication=get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING"),
        )

    def __repr__(self) -> str:  # settings hold secrets; never print them
        return f"Settings(tenant_id={self.tenant_id!r}, public_base_url={self.public_base_url!r}, ...)"
