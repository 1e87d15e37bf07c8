"""Shadow mode over a storm of alerts, on the local runtime: every decision is recorded, one shadow run per
resource, and nothing acts (the ARM stand-in's activity log stays empty) and no one is asked (the mail
catcher stays empty). The shadow report over the storm's period then shows the figures."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from local_azure import scenario
from local_azure.stack import LocalStack
from tests.e2e.conftest import App, start_app
from tests.e2e.journeys import AGENT, ALICE

pytestmark = pytest.mark.e2e
RULE = "e2e-write-autonomous"  # plan write-autonomous: restart the VM, autonomously
VMS = [f"/subscriptions/{scenario.SUBSCRIPTION}/resourceGroups/rg-prod-web/providers/Microsoft.Compute/"
       f"virtualMachines/vm-storm-{n:02d}" for n in range(10)]
FIRINGS = 30  # per VM: 300 alerts in all


@pytest.fixture(scope="module")
def app(stand_ins: LocalStack) -> Iterator[App]:
    # The whole app in shadow mode, under a ceiling that would otherwise let the plan act on its own.
    yield from start_app(stand_ins, GATES_SHADOW_MODE="true", GATES_AUTONOMY_CEILING="autonomous")


@pytest.fixture(scope="module")
def alice(app: App) -> requests.Session:
    return app.session(ALICE)


def storm(app: App) -> None:
    """300 alerts, 30 firings on each of 10 VMs, straight onto the `alerts` queue as alerting puts them."""
    started = time.time()
    bodies = []
    for firing in range(FIRINGS):
        fired = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started + firing))
        for n, vm in enumerate(VMS):
            alert_id = f"storm-{int(started)}-{n:02d}-{firing:02d}"
            bodies.append((alert_id, json.dumps(scenario.common_alert(RULE, vm, alert_id=alert_id, fired_at=fired))))
    with ServiceBusClient.from_connection_string(app.stack.service_bus.connection_string) as client, \
            client.get_queue_sender("alerts") as sender:
        for start in range(0, len(bodies), 50):
            sender.send_messages([ServiceBusMessage(body, message_id=message_id)
                                  for message_id, body in bodies[start:start + 50]])


def shadow_runs(alice: requests.Session, app: App, since: str) -> list[dict[str, Any]]:
    listed = alice.get(f"{app.base_url}/api/runs", params={"state": "shadowed", "limit": "500"},
                       headers={"Accept": "application/json"}, timeout=30).json()["runs"]
    return [r for r in listed if r["created_at"] > since and r["alert_rule"] == RULE]


def test_a_storm_in_shadow_mode_records_every_decision_acts_on_nothing_and_asks_no_one(
        app: App, alice: requests.Session) -> None:
    stack = app.stack
    stack.arm.reset()
    # The agent's own identity could restart them: a shadow run says no credentials would be needed.
    stack.arm.assign_role(AGENT, "Virtual Machine Contributor",
                          f"/subscriptions/{scenario.SUBSCRIPTION}/resourceGroups/rg-prod-web")
    assert stack.mail is not None
    stack.mail.clear()
    since = dt.datetime.now(dt.UTC)
    storm(app)

    def settled() -> list[dict[str, Any]] | None:
        if stack.service_bus.queue_depth("alerts"):
            return None
        found = shadow_runs(alice, app, since.isoformat())
        return found if len(found) == len(VMS) else None

    try:
        runs = scenario.wait_until(settled, 240, "the storm to settle into one shadow run per VM", interval=1)
    except TimeoutError as timed_out:
        # Say what was there, so that a run that did not settle can be told from one that settled wrongly.
        found = shadow_runs(alice, app, since.isoformat())
        by_vm: dict[str, list[str]] = {}
        for summary in found:
            by_vm.setdefault(summary["resource_id"].rsplit("/", 1)[-1], []).append(summary["run_id"])
        twice = {vm: [{k: scenario.get_run(alice, app.base_url, run_id).get(k) for k in ("run_id", "created_at",
                                                                                           "alert", "outcome")}
                      for run_id in ids] for vm, ids in by_vm.items() if len(ids) > 1}
        rejected = alice.get(f"{app.base_url}/api/rejected-alerts", headers={"Accept": "application/json"},
                             timeout=30).text[:2000]
        raise AssertionError(
            f"{timed_out}: alerts queued {stack.service_bus.queue_depth('alerts')}, dead-lettered "
            f"{stack.service_bus.dead_letter_depth('alerts')}; shadow runs by VM "
            f"{sorted(r['resource_id'].rsplit('/', 1)[-1] for r in found)}; listed more than once {twice}; "
            f"rejected alerts {rejected}; "
            f"host log: {app.process.log_tail(3000)}") from None
    assert sorted(r["resource_id"].lower() for r in runs) == sorted(vm.lower() for vm in VMS)
    firings = 0
    for summary in runs:
        run = scenario.get_run(alice, app.base_url, summary["run_id"])
        events = [e["event"] for e in run["timeline"]]
        assert run["state"] == "shadowed"
        assert run["guardrails"]["shadow"] is True
        assert run["guardrails"]["effect"] == "allow"
        assert run["guardrails"]["credentials_needed"] == {}
        assert events.count("guardrails_decided") == 1
        assert events.count("shadow_decided") == 1
        assert {s["state"] for s in run["steps"]} == {"skipped"}
        firings += events.count("alert_received") + events.count("alert_joined")
    assert firings == len(VMS) * FIRINGS  # every firing is recorded, on the run of its VM
    assert stack.service_bus.dead_letter_depth("alerts") == 0
    # Nothing acted, nobody was asked: no write reached ARM and no e-mail was sent.
    assert stack.arm.activity() == []
    assert stack.mail.messages() == []

    report = alice.get(f"{app.base_url}/api/shadow-report", params={"since": since.isoformat()},
                       headers={"Accept": "application/json"}, timeout=30)
    assert report.status_code == 200, report.text
    scope = next(s for s in report.json()["scopes"] if s["scope"] == "plan write-autonomous")
    assert scope["shadow_runs"] == len(VMS)
    assert scope["resources"] == len(VMS)
    assert scope["would"]["autonomous"] == len(VMS)
    assert scope["credentials"]["not_needed"] == len(VMS)
    assert scope["suggestion"].startswith("candidate to leave shadow mode")
    page = alice.get(f"{app.base_url}/api/shadow-report", params={"since": since.isoformat()},
                     headers={"Accept": "text/html"}, timeout=30)
    assert "plan write-autonomous" in page.text
    assert "Candidate to leave shadow mode" in page.text
