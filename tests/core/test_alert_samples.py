"""Every monitoring service's alert, fired and resolved, as Azure Monitor sends it, is read."""

from __future__ import annotations

import json

import pytest

from shared.core.alerts import parse_alert, target_scope
from tests.alert_samples import fired, samples


@pytest.mark.parametrize(("name", "document"), samples(), ids=[name for name, _ in samples()])
def test_every_sample_is_read(name: str, document: dict) -> None:  # type: ignore[type-arg]
    alert = parse_alert(json.dumps(document).encode())
    assert alert.condition == name.split(":")[1]
    assert alert.monitoring_service == document["data"]["essentials"]["monitoringService"]


def test_a_budget_alert_has_no_rule_severity_or_target() -> None:
    alert = parse_alert(json.dumps(fired("budget-actual")))
    assert (alert.rule_name, alert.severity, alert.target_resource_ids) == (None, None, ())
    assert alert.summary == "CostAlerts alert"


def test_a_service_health_alert_targets_the_subscription() -> None:
    (target,) = parse_alert(json.dumps(fired("service-health"))).target_resource_ids
    assert target_scope(target) == "subscription"


def test_a_resource_group_scoped_activity_log_alert_targets_the_group() -> None:
    (target,) = parse_alert(json.dumps(fired("activity-log-resource-group"))).target_resource_ids
    assert target_scope(target) == "resource group"


def test_the_samples_cover_every_monitoring_service() -> None:
    services = {document["data"]["essentials"]["monitoringService"] for _, document in samples()}
    assert services >= {"Platform", "Log Analytics", "Application Insights", "Log Alerts V2",
                        "Activity Log - Administrative", "ServiceHealth", "Resource Health", "SmartDetector",
                        "CostAlerts", "Prometheus"}
