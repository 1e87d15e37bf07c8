"""infra/ declares every queue, table and app setting that shared/topology.py says the app expects."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.topology import QUEUE_PROPERTIES, SETTINGS, Queue, QueueProperties, Table
from tests.infra.bicep import INFRA, MODULES, bicep_files, parse, resolve, resource_properties, variable

MAIN = INFRA / "main.bicep"
APPSETTINGS = MODULES / "appsettings.bicep"
SERVICEBUS = MODULES / "servicebus.bicep"

# Settings the local runtime needs and Azure does not: e-mail goes through ACS, the agent is the managed identity.
LOCAL_ONLY_SETTINGS = {"GATES_AGENT_CLIENT_SECRET", "GATES_SMTP_HOST", "GATES_SMTP_PORT"}
# In Azure, a connection is identity-based: its name with the service's address suffix.
IDENTITY_BASED_CONNECTIONS = {
    "ServiceBusConnection": "ServiceBusConnection__fullyQualifiedNamespace",
    "TablesConnection": "TablesConnection__tableServiceUri",
}


def iso_duration(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"PT{minutes}M" if not rest else f"PT{seconds}S"


def declared_queues() -> dict[str, dict[str, object]]:
    return {queue["name"]: queue for queue in variable(MAIN, "queues")}


def declared_settings() -> dict[str, object]:
    return variable(APPSETTINGS, "appSettings")


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(path: Path) -> None:
    assert parse(path)


@pytest.mark.parametrize("queue", list(Queue), ids=str)
def test_every_queue_is_declared_with_the_properties_the_app_expects(queue: Queue) -> None:
    expected: QueueProperties = QUEUE_PROPERTIES[queue]
    declared = declared_queues()[queue.value]
    assert declared == {
        "name": queue.value,
        "maxDeliveryCount": expected.max_delivery_count,
        "lockDuration": iso_duration(expected.lock_duration_seconds),
        "requiresDuplicateDetection": expected.requires_duplicate_detection,
        "duplicateDetectionHistoryTimeWindow": iso_duration(expected.duplicate_detection_window_seconds),
        "deadLetteringOnMessageExpiration": expected.dead_lettering_on_message_expiration,
    }


def test_no_queue_is_declared_that_the_app_does_not_use() -> None:
    assert set(declared_queues()) == {queue.value for queue in Queue}


def test_the_queue_resource_applies_every_declared_property() -> None:
    properties = resource_properties(SERVICEBUS, "appQueues")
    for name in ("maxDeliveryCount", "lockDuration", "requiresDuplicateDetection",
                 "duplicateDetectionHistoryTimeWindow", "deadLetteringOnMessageExpiration"):
        accessor = properties[name]["operator"]
        assert accessor["type"] == "property_accessor"
        assert accessor["operands"] == {"operand_1": "queue", "operand_2": name}


def test_every_table_is_declared() -> None:
    assert sorted(variable(MAIN, "tables")) == sorted(table.value for table in Table)


@pytest.mark.parametrize("setting", [s.name for s in SETTINGS if s.name not in LOCAL_ONLY_SETTINGS])
def test_every_app_setting_is_declared(setting: str) -> None:
    assert IDENTITY_BASED_CONNECTIONS.get(setting, setting) in declared_settings()


@pytest.mark.parametrize("setting", [s.name for s in SETTINGS if s.secret and s.name not in LOCAL_ONLY_SETTINGS])
def test_every_secret_setting_is_a_key_vault_reference(setting: str) -> None:
    value = resolve(APPSETTINGS, declared_settings()[setting])
    assert isinstance(value, str)
    assert re.fullmatch(r"@Microsoft\.KeyVault\(SecretUri=\$\{keyVaultUri\}secrets/\$\{\w+\}/\)", value)


def test_the_local_only_settings_are_settings_of_the_app() -> None:
    assert {s.name for s in SETTINGS} >= LOCAL_ONLY_SETTINGS


def test_the_functions_host_storage_is_identity_based() -> None:
    settings = declared_settings()
    assert "AzureWebJobsStorage__accountName" in settings
    assert "AzureWebJobsStorage" not in settings


def test_the_app_runs_with_its_managed_identity_as_the_agent() -> None:
    assert declared_settings()["GATES_AGENT_IDENTITY"] == "managed_identity"
    assert declared_settings()["GATES_EMAIL_TRANSPORT"] == "acs"
