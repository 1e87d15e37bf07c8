from __future__ import annotations

import json

import pytest

from shared.core.alerts import parse_alert
from shared.core.errors import MalformedAlert
from tests.pipeline import VM, alert


def test_a_common_schema_alert_is_read() -> None:
    parsed = parse_alert(json.dumps(alert()))
    assert parsed.rule_name == "vm-not-responding"
    assert parsed.target_resource_id == VM.lower()
    assert parsed.condition == "Fired"


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json at all", "not JSON"),
    (b"[1, 2]", "not an object"),
    (json.dumps({"schemaId": "Microsoft.Insights/activityLogs"}).encode(), "common alert schema"),
    (json.dumps({"schemaId": "azureMonitorCommonAlertSchema"}).encode(), "data is missing"),
])
def test_a_malformed_alert_says_why(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedAlert, match=reason):
        parse_alert(body)


def test_an_alert_without_a_target_resource_is_malformed() -> None:
    document = alert()
    document["data"]["essentials"]["alertTargetIDs"] = []
    with pytest.raises(MalformedAlert, match="no target resource"):
        parse_alert(json.dumps(document))


def test_an_unknown_severity_is_malformed() -> None:
    document = alert(severity="Critical")
    with pytest.raises(MalformedAlert, match="severity"):
        parse_alert(json.dumps(document))


@pytest.mark.parametrize("target", [
    VM + "/../../../../../rg-prod-db/providers/Microsoft.Compute/virtualMachines/sql-01",
    VM.replace("/virtualMachines/", "/virtualMachines/./"),
    VM + "?api-version=1",
    VM + "#x",
    VM + "%2f..",
    VM + "\r\nBcc: someone@example.com",
    "/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
    "/subscriptions/2b5c3f6e-0000-4000-8000-0000000005b1/resourceGroups/rg",
])
def test_a_target_that_is_not_a_well_formed_resource_id_is_refused(target: str) -> None:
    document = alert()
    document["data"]["essentials"]["alertTargetIDs"] = [target]
    with pytest.raises(MalformedAlert, match="well-formed"):
        parse_alert(json.dumps(document))


def test_a_nested_resource_id_is_well_formed() -> None:
    document = alert()
    nested = VM.replace("virtualMachines/vm-web-01", "virtualMachineScaleSets/vmss/virtualMachines/0")
    document["data"]["essentials"]["alertTargetIDs"] = [nested]
    assert parse_alert(json.dumps(document)).target_resource_id == nested


def test_an_oversized_description_is_cut_and_control_characters_removed() -> None:
    document = alert()
    document["data"]["essentials"]["description"] = "line\r\n" + "x" * 50_000
    parsed = parse_alert(json.dumps(document))
    assert len(parsed.description) == 2000
    assert "\n" not in parsed.description
