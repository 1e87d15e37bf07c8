"""Alerting that puts alerts straight on the `alerts` queue (azure-servicebus to the Service Bus stand-in):
unreadable ones are set aside with a reason a person can read, and the valid ones around them run."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
import requests
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from local_azure import scenario
from local_azure.stack import LocalStack
from tests.e2e.conftest import App, start_app
from tests.e2e.journeys import AGENT, ALICE, VM, Journey

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def app(stand_ins: LocalStack) -> Iterator[App]:
    yield from start_app(stand_ins, GATES_AUTONOMY_CEILING="autonomous")


@pytest.fixture(scope="module")
def alice(app: App) -> requests.Session:
    return app.session(ALICE)


def test_unreadable_alerts_are_kept_with_a_reason_and_valid_ones_around_them_run(
        app: App, alice: requests.Session) -> None:
    app.stack.arm.reset()
    app.stack.arm.assign_role(AGENT, "Virtual Machine Contributor", VM)
    # Two alertTargetIDs in one object: a reader keeping the first would act on another resource than one
    # keeping the last, so the alert is refused rather than read either way.
    ambiguous = json.dumps(scenario.common_alert("e2e-write-autonomous", VM)).replace(
        '"alertTargetIDs"', '"alertTargetIDs": [], "alertTargetIDs"', 1)
    bodies = [
        ("valid-before", json.dumps(scenario.common_alert("e2e-read-autonomous", VM))),
        ("not-json", "{this is not json"),
        ("wrong-schema", json.dumps({"schemaId": "Microsoft.Insights/activityLogs", "data": {}})),
        ("ambiguous", ambiguous),
        ("valid-after", json.dumps(scenario.common_alert("e2e-write-autonomous", VM))),
    ]
    since = dt.datetime.now(dt.UTC).isoformat()
    with ServiceBusClient.from_connection_string(app.stack.service_bus.connection_string) as client, \
            client.get_queue_sender("alerts") as sender:
        sender.send_messages([ServiceBusMessage(body, message_id=message_id) for message_id, body in bodies])

    def rejected() -> dict[str, str] | None:
        listed = alice.get(f"{app.base_url}/api/rejected-alerts", timeout=30).json()["rejected"]
        found = {r["message_id"]: r["reason"] for r in listed}
        return found if {"not-json", "wrong-schema", "ambiguous"} <= set(found) else None

    reasons = scenario.wait_until(rejected, 60, "the three unreadable alerts to be set aside")
    assert "not JSON" in reasons["not-json"]
    assert "common alert schema" in reasons["wrong-schema"]
    assert "'alertTargetIDs' appears twice" in reasons["ambiguous"]
    for rule in ("e2e-read-autonomous", "e2e-write-autonomous"):
        journey = Journey(app, alice)
        journey.run_id = scenario.wait_until(
            lambda rule=rule: next((r["run_id"] for r in alice.get(f"{app.base_url}/api/runs", timeout=30)
                                    .json()["runs"] if r["alert_rule"] == rule and r["created_at"] > since), None),
            60, f"a run for {rule}")
        assert journey.run()["state"] == "succeeded"
    assert app.stack.service_bus.dead_letter_depth("alerts") == 0
