"""The app's settings, read once from the environment (App Settings in Azure, local.settings.json here)
and validated at start-up: a missing or malformed setting stops the app with the setting's name.

Each setting is declared once, in `shared/topology.py` (`SETTINGS`: name, default, kind, the attribute
it fills); this module only parses the declared kinds into typed values.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from shared.core.model import Mode
from shared.topology import SERVICE_BUS_CONNECTION, SETTINGS, TABLES_CONNECTION, Setting, SettingKind

APP_ROOT = Path(__file__).resolve().parent.parent
# The identity-based form of a connection setting: `<name>__<suffix>` names the endpoint, and the app
# authenticates with its managed identity.
IDENTITY_SUFFIX = {SERVICE_BUS_CONNECTION: "fullyQualifiedNamespace", TABLES_CONNECTION: "tableServiceUri"}


class SettingsError(Exception):
    pass


def response_plans_path(env: Mapping[str, str] | None = None) -> Path:
    """GATES_RESPONSE_PLANS, relative to the app's folder unless absolute. Read at import (the plans are
    validated at start-up), before the other settings are needed."""
    env = os.environ if env is None else env
    path = Path(env.get("GATES_RESPONSE_PLANS") or "config/response-plans.json")
    return path if path.is_absolute() else APP_ROOT / path


def action_catalog_path(env: Mapping[str, str] | None = None) -> Path:
    """GATES_ACTION_CATALOG, resolved like the response plans (read at import, before the plans)."""
    env = os.environ if env is None else env
    path = Path(env.get("GATES_ACTION_CATALOG") or "config/actions.json")
    return path if path.is_absolute() else APP_ROOT / path


@dataclass(frozen=True)
class Connection:
    """A connection string, or the endpoint to reach with the managed identity."""

    connection_string: str | None
    endpoint: str | None


@dataclass(frozen=True, repr=False)
class Settings:
    servicebus: Connection
    tables: Connection
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
    shadow_mode: bool
    kill_switch: bool
    kill_switch_reason: str | None
    correlation_cooldown: dt.timedelta
    consent_timeout: dt.timedelta
    credential_timeout: dt.timedelta
    email_transport: str
    email_sender: str
    acs_endpoint: str | None
    smtp_host: str
    smtp_port: int
    max_message_bytes: int
    alert_webhook_audience: str | None
    api_audience: str | None
    appinsights_connection_string: str | None
    appinsights_authentication: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values = {s.attr: _read(s, env) for s in SETTINGS if s.attr}
        missing = {f.name for f in fields(cls)} - set(values)
        if missing:  # a declaration gap is a bug in topology.py, not an operator's mistake
            raise SettingsError(f"no setting declared for {sorted(missing)}")
        settings = cls(**values)
        settings._check_combinations()
        return settings

    def _check_combinations(self) -> None:
        if self.email_transport not in ("acs", "smtp"):
            raise SettingsError("app setting GATES_EMAIL_TRANSPORT must be acs or smtp")
        if self.email_transport == "acs" and not self.acs_endpoint:
            raise SettingsError("app setting GATES_ACS_ENDPOINT is required when GATES_EMAIL_TRANSPORT is acs")
        if self.agent_identity not in ("managed_identity", "client_secret"):
            raise SettingsError("app setting GATES_AGENT_IDENTITY must be managed_identity or client_secret")
        if self.agent_identity == "client_secret" and not (self.agent_client_id and self.agent_client_secret):
            raise SettingsError("app settings GATES_AGENT_CLIENT_ID and GATES_AGENT_CLIENT_SECRET are required "
                                "when GATES_AGENT_IDENTITY is client_secret")

    def __repr__(self) -> str:  # settings hold secrets; never print them
        return f"Settings(tenant_id={self.tenant_id!r}, public_base_url={self.public_base_url!r}, ...)"


def _text(setting: Setting, env: Mapping[str, str]) -> str | None:
    value = env.get(setting.name) or setting.default
    value = value.strip() if value else None
    if setting.required and not value and setting.kind is not SettingKind.CONNECTION:
        raise SettingsError(f"app setting {setting.name} is required and not set")
    return value or None


def _read(setting: Setting, env: Mapping[str, str]) -> Any:
    name = setting.name
    if setting.kind is SettingKind.CONNECTION:
        identity_name = f"{name}__{IDENTITY_SUFFIX[name]}"
        connection = Connection(_text(setting, env), (env.get(identity_name) or "").strip() or None)
        if not (connection.connection_string or connection.endpoint):
            raise SettingsError(f"set {name} (connection string) or {identity_name} (managed identity)")
        return connection
    text = _text(setting, env)
    if text is None:
        return None
    try:
        return _PARSERS[setting.kind](text)
    except ValueError:
        raise SettingsError(f"app setting {name} must be {_EXPECTED[setting.kind]}; got {text[:40]!r}"
                            if not setting.secret else f"app setting {name} must be {_EXPECTED[setting.kind]}") \
            from None


def _minutes(text: str) -> dt.timedelta:
    minutes = float(text)
    if not 0 < minutes < 60 * 24 * 30:
        raise ValueError(text)
    return dt.timedelta(minutes=minutes)


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise ValueError(text)
    return port


def _bytes(text: str) -> int:
    size = int(text)
    if not 64 * 1024 <= size <= 100 * 1024 * 1024:  # Service Bus: 256 KB Standard, at most 100 MB Premium
        raise ValueError(text)
    return size


def _ceiling(text: str) -> Mode:
    mode = Mode(text)
    if mode is Mode.READ_ONLY:
        raise ValueError(text)
    return mode


def _switch(text: str) -> bool:
    value = text.lower()
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no"):
        return False
    raise ValueError(text)


def _url(text: str) -> str:
    if not text.startswith(("https://", "http://")):
        raise ValueError(text)
    return text.rstrip("/")


_PARSERS: dict[SettingKind, Any] = {
    SettingKind.TEXT: str,
    SettingKind.URL: _url,
    SettingKind.MINUTES: _minutes,
    SettingKind.PORT: _port,
    SettingKind.MODE: _ceiling,
    SettingKind.KEY: lambda text: text.encode(),
    SettingKind.BYTES: _bytes,
    SettingKind.SWITCH: _switch,
}
_EXPECTED = {
    SettingKind.TEXT: "text",
    SettingKind.URL: "an http(s) URL",
    SettingKind.MINUTES: "a number of minutes (more than 0, under 30 days)",
    SettingKind.PORT: "a TCP port number",
    SettingKind.MODE: "review or autonomous",
    SettingKind.KEY: "a key",
    SettingKind.BYTES: "a number of bytes from 65536 to 104857600",
    SettingKind.SWITCH: "on or off (true/false, 1/0)",
}
