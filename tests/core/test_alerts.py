from __future__ import annotations

import json

import pytest

from shared.core.alert_status import intake_key
from shared.core.alerts import parse_alert, target_scope
from shared.core.errors import MalformedAlert
from tests.pipeline import SUB, VM, alert


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


def test_an_alert_with_no_target_is_read_with_none() -> None:
    for targets in ([], None):
        document = alert()
        document["data"]["essentials"]["alertTargetIDs"] = targets
        assert parse_alert(json.dumps(document)).target_resource_ids == ()


def test_an_alert_without_the_target_field_is_read_with_none() -> None:
    document = alert()
    del document["data"]["essentials"]["alertTargetIDs"]
    assert parse_alert(json.dumps(document)).target_resource_ids == ()


def test_targets_that_are_not_a_list_of_ids_are_malformed() -> None:
    for targets in ("/subscriptions/x", [1], [""], {"a": 1}):
        document = alert()
        document["data"]["essentials"]["alertTargetIDs"] = targets
        with pytest.raises(MalformedAlert, match="alertTargetIDs"):
            parse_alert(json.dumps(document))


def test_null_rule_severity_and_signal_type_are_read_as_absent() -> None:
    document = alert()
    for name in ("alertRule", "severity", "signalType"):
        document["data"]["essentials"][name] = None
    parsed = parse_alert(json.dumps(document))
    assert (parsed.rule_name, parsed.severity) == (None, None)
    assert parsed.rule_id == parsed.alert_id  # no rule: the alert itself is what correlates


def test_absent_rule_and_severity_are_read_as_absent() -> None:
    document = alert()
    del document["data"]["essentials"]["alertRule"]
    del document["data"]["essentials"]["severity"]
    parsed = parse_alert(json.dumps(document))
    assert (parsed.rule_name, parsed.severity) == (None, None)


def test_a_rule_that_is_not_text_is_malformed() -> None:
    document = alert()
    document["data"]["essentials"]["alertRule"] = {"name": "x"}
    with pytest.raises(MalformedAlert, match="alertRule is a dict, not text"):
        parse_alert(json.dumps(document))


def test_the_rule_id_is_read_in_either_spelling() -> None:
    for name in ("alertRuleID", "alertRuleId"):
        document = alert()
        document["data"]["essentials"][name] = "/subscriptions/s/providers/microsoft.insights/metricAlerts/r"
        assert parse_alert(json.dumps(document)).rule_id.endswith("/metricAlerts/r")


def test_a_target_named_twice_is_one_target() -> None:
    document = alert()
    document["data"]["essentials"]["alertTargetIDs"] = [VM, VM.lower(), VM + "/"]
    assert parse_alert(json.dumps(document)).target_resource_ids == (VM,)


@pytest.mark.parametrize(("target", "scope"), [
    (f"/subscriptions/{SUB}", "subscription"),
    (f"/subscriptions/{SUB}/", "subscription"),
    (f"/subscriptions/{SUB}/resourceGroups/rg-prod-web", "resource group"),
    (f"/subscriptions/{SUB}/resourcegroups/rg-prod-web/", "resource group"),
    (VM, "resource"),
])
def test_subscription_and_resource_group_targets_are_well_formed(target: str, scope: str) -> None:
    document = alert()
    document["data"]["essentials"]["alertTargetIDs"] = [target]
    (parsed,) = parse_alert(json.dumps(document)).target_resource_ids
    assert parsed == target.rstrip("/")
    assert target_scope(parsed) == scope


def test_the_monitoring_service_is_recorded() -> None:
    assert parse_alert(json.dumps(alert())).monitoring_service == "Platform"


def test_the_intake_key_is_the_same_for_the_same_alert_and_differs_by_condition() -> None:
    fired = parse_alert(json.dumps(alert()))
    again = parse_alert(json.dumps(alert()))
    resolved = parse_alert(json.dumps(alert(condition="Resolved")))
    assert intake_key(fired) == intake_key(again) != intake_key(resolved)
    assert len(intake_key(fired)) == 64


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
    f"/subscriptions/{SUB}/resourceGroups/rg/../rg2",
    f"/subscriptions/{SUB}/resourceGroups/./",
    f"/subscriptions/{SUB}/resourceGroups",
    f"/subscriptions/{SUB}?x=1",
    f"/subscriptions/{SUB}/resourceGroups/rg%2f..",
    f"/subscriptions/{SUB}/resourceGroups/rg\n",
    VM + "\n",
    f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines/vm",
    "/subscriptions/",
    "/",
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
