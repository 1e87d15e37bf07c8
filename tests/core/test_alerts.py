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
