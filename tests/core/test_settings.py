"""Settings are declared once (shared/topology.py) and validated at start-up with the setting's name."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from shared.core.model import Mode
from shared.settings import Connection, Settings, SettingsError
from shared.topology import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]


def without(*names: str, **overrides: str) -> dict[str, str]:
    return {k: v for k, v in EXAMPLE.items() if k not in names} | overrides


def test_the_example_settings_are_complete() -> None:
    settings = Settings.from_env(EXAMPLE)
    assert settings.public_base_url == "http://127.0.0.1:7071"
    assert settings.smtp_port == 2525
    assert settings.consent_timeout == dt.timedelta(minutes=30)
    assert settings.autonomy_ceiling is Mode.REVIEW


def test_every_settings_attribute_is_declared_once_in_the_topology() -> None:
    attributes = [s.attr for s in SETTINGS if s.attr]
    assert sorted(attributes) == sorted(f.name for f in dataclasses.fields(Settings))


def test_a_missing_required_setting_is_named() -> None:
    with pytest.raises(SettingsError, match="GATES_TENANT_ID is required"):
        Settings.from_env(without("GATES_TENANT_ID"))


def test_a_connection_may_be_given_by_its_managed_identity_endpoint() -> None:
    settings = Settings.from_env(without("ServiceBusConnection", **{
        "ServiceBusConnection__fullyQualifiedNamespace": "gates.servicebus.windows.net"}))
    assert settings.servicebus == Connection(None, "gates.servicebus.windows.net")


def test_a_connection_given_neither_way_names_both_forms() -> None:
    with pytest.raises(SettingsError, match="TablesConnection__tableServiceUri"):
        Settings.from_env(without("TablesConnection"))


@pytest.mark.parametrize(("name", "value"), [
    ("GATES_CONSENT_TIMEOUT_MINUTES", "soon"),
    ("GATES_CONSENT_TIMEOUT_MINUTES", "-5"),
    ("GATES_SMTP_PORT", "70000"),
    ("GATES_AUTONOMY_CEILING", "read-only"),
    ("GATES_AUTONOMY_CEILING", "yolo"),
    ("GATES_PUBLIC_BASE_URL", "gates.example"),
    ("GATES_EMAIL_TRANSPORT", "pigeon"),
    ("GATES_SERVICE_BUS_MAX_MESSAGE_BYTES", "big"),
    ("GATES_SERVICE_BUS_MAX_MESSAGE_BYTES", "1000"),
    ("GATES_SERVICE_BUS_MAX_MESSAGE_BYTES", str(200 * 1024 * 1024)),
])
def test_a_malformed_setting_is_refused_with_its_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(without(name, **{name: value}))


def test_settings_never_print_their_secrets() -> None:
    printed = repr(Settings.from_env(EXAMPLE))
    assert all(EXAMPLE[s.name] not in printed for s in SETTINGS if s.secret and s.name in EXAMPLE)


def test_e_mail_through_communication_services_needs_its_endpoint() -> None:
    with pytest.raises(SettingsError, match="GATES_ACS_ENDPOINT"):
        Settings.from_env(without("GATES_EMAIL_TRANSPORT", GATES_EMAIL_TRANSPORT="acs"))


def test_a_client_secret_agent_needs_its_client_id_and_secret() -> None:
    with pytest.raises(SettingsError, match="GATES_AGENT_CLIENT_SECRET"):
        Settings.from_env(without("GATES_AGENT_CLIENT_SECRET"))


def test_the_service_bus_message_size_is_the_standard_tiers_unless_set() -> None:
    assert Settings.from_env(EXAMPLE).max_message_bytes == 256 * 1024
    premium = Settings.from_env(without(**{"GATES_SERVICE_BUS_MAX_MESSAGE_BYTES": "1048576"}))
    assert premium.max_message_bytes == 1024 * 1024


def test_the_kill_switch_setting_is_off_unless_set() -> None:
    settings = Settings.from_env(EXAMPLE)
    assert (settings.kill_switch, settings.kill_switch_reason) == (False, None)


@pytest.mark.parametrize(("value", "engaged"), [("on", True), ("true", True), ("1", True), ("ON", True),
                                                ("off", False), ("false", False), ("0", False)])
def test_the_kill_switch_setting_reads_on_and_off(value: str, engaged: bool) -> None:
    settings = Settings.from_env(without(GATES_KILL_SWITCH=value, GATES_KILL_SWITCH_REASON="region outage"))
    assert settings.kill_switch is engaged
    assert settings.kill_switch_reason == "region outage"


def test_a_kill_switch_setting_that_is_neither_on_nor_off_stops_the_app() -> None:
    with pytest.raises(SettingsError, match="GATES_KILL_SWITCH must be on or off"):
        Settings.from_env(without(GATES_KILL_SWITCH="maybe"))
