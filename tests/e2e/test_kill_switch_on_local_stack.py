"""The kill switch thrown while runs are in flight, on the local runtime, by a Gates.Admin signed in
through the Entra stand-in (a browser session: the POST carries the form token the GET issued).

In flight at the throw:
- autonomous runs of two restarts whose first restart ARM accepted and is still carrying out (a long
  operation): it is followed to its end, and the run pauses before its second restart;
- a review run waiting for consent: Alice consents after the throw; it is recorded, and the run pauses;
- runs whose alerts arrive after the throw: they pause before any ARM call.

No write starts at ARM after the throw (the ARM stand-in's activity log, by time); nothing is lost; once
the switch is lifted every paused run completes, each write sent once."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from local_azure import scenario
from local_azure.stack import LocalStack
from tests.e2e.conftest import App, start_app
from tests.e2e.journeys import AGENT, ALICE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

OLGA = "olga@contoso.test"
VM1 = scenario.VM_WEB_01
VM2 = VM1.replace("vm-web-01", "vm-web-02")
IN_FLIGHT = 4  # runs whose first write ARM is carrying out at the throw
AFTER = 3  # runs whose alerts arrive after the throw
OPERATION_SECONDS = 12  # the accepted writes outlast the throw, then end on their own
WAIT = 90.0


@dataclass
class Thrown:
    app: App
    olga: requests.Session
    alice: requests.Session
    thrown_at: dt.datetime
    ids: dict[str, list[str]] = field(default_factory=dict)
    while_thrown: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> its JSON, while thrown
    activity_thrown: list[dict[str, Any]] = field(default_factory=list)
    paused_listed: list[str] = field(default_factory=list)  # GET /api/runs?state=paused while thrown
    page: str = ""  # a paused run's page while thrown
    lift_answer: dict[str, Any] = field(default_factory=dict)
    ended: dict[str, dict[str, Any]] = field(default_factory=dict)
    activity: list[dict[str, Any]] = field(default_factory=list)

    def every(self) -> list[str]:
        return [run_id for group in self.ids.values() for run_id in group]


def raise_alerts(app: App, reader: requests.Session, rule: str, resource: str, count: int) -> list[str]:
    """`count` alerts each from a rule of its own (one run each); the run ids they made."""
    cutoff = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()
    tag = uuid.uuid4().hex[:8]
    for i in range(count):
        document = scenario.common_alert(rule, resource, alert_id=f"switch-{tag}-{i}")
        document["data"]["essentials"]["alertRuleID"] = (
            f"/subscriptions/{scenario.SUBSCRIPTION}/providers/Microsoft.Insights/metricAlerts/switch-{tag}-{i}")
        response = scenario.post_alert(app.base_url, app.function_key, document)
        assert response.status_code == 202, response.text

    def made() -> list[str] | None:
        listed = reader.get(f"{app.base_url}/api/runs", params={"limit": "500"},
                            headers={"Accept": "application/json"}, timeout=30).json()["runs"]
        found = [r["run_id"] for r in listed if r["alert_rule"] == rule and r["created_at"] >= cutoff
                 and r["resource_id"].lower() == resource.lower()]
        return found if len(found) == count else None

    ids: list[str] = scenario.wait_until(made, WAIT, f"{count} runs of {rule}", 0.3)
    return ids


def runs(app: App, reader: requests.Session, ids: list[str]) -> list[dict[str, Any]]:
    return [scenario.get_run(reader, app.base_url, run_id) for run_id in ids]


def wait_for(app: App, reader: requests.Session, ids: list[str], what: str, condition: Any) -> None:
    scenario.wait_until(lambda: all(condition(r) for r in runs(app, reader, ids)), WAIT, what, 0.3)


def switch(app: App, olga: requests.Session, engaged: bool, reason: str) -> requests.Response:
    shown = olga.get(f"{app.base_url}/api/kill-switch", headers={"Accept": "application/json"}, timeout=30)
    assert shown.status_code == 200, shown.text
    return olga.post(f"{app.base_url}/api/kill-switch", timeout=60,
                     json={"engaged": engaged, "reason": reason, "form_token": shown.json()["form_token"]})


def started_at_arm(entry: dict[str, Any]) -> bool:
    """An activity line for a request that reached ARM (a write it accepted, did, or refused), not the
    end of an operation it had accepted before (those carry the operation's id and only finish)."""
    return entry["outcome"] in ("Accepted", "Failed") or (entry["outcome"] == "Succeeded" and not entry["operationId"])


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def thrown(stand_ins: LocalStack) -> Iterator[Thrown]:
    arm = stand_ins.arm
    assert arm is not None
    arm.reset()
    arm.assign_role(AGENT, "Virtual Machine Contributor", VM1)
    arm.assign_role(AGENT, "Virtual Machine Contributor", VM2)
    for app in start_app(stand_ins, GATES_AUTONOMY_CEILING="autonomous"):
        olga, alice = app.session(OLGA), app.session(ALICE)
        ids: dict[str, list[str]] = {}
        # A review run waiting for Alice's consent (its preview read already).
        ids["consent"] = raise_alerts(app, olga, "e2e-write-review", VM1, 1)
        wait_for(app, olga, ids["consent"], "consent asked",
                 lambda r: any(q["state"] == "pending" for q in r["requests"]))
        # Autonomous runs whose first restart ARM accepted and carries out for a while.
        arm.add_fault("long_operation", resource=VM2, seconds=OPERATION_SECONDS, count=IN_FLIGHT)
        ids["in flight"] = raise_alerts(app, olga, "e2e-write-twice-autonomous", VM2, IN_FLIGHT)
        wait_for(app, olga, ids["in flight"], "first writes accepted", lambda r: r["steps"][0]["operation"])

        response = switch(app, olga, True, "bad deploy in westeurope")
        assert response.status_code == 200, response.text
        result = Thrown(app, olga, alice, at(response.json()["at"]), ids)

        ids["after"] = raise_alerts(app, olga, "e2e-write-autonomous", VM2, AFTER)
        consent = runs(app, olga, ids["consent"])[0]
        request = next(q for q in consent["requests"] if q["state"] == "pending")
        link = f"{app.base_url}/api/runs/{consent['run_id']}/requests/{request['request_id']}"
        assert scenario.decide(alice, link, "approve").status_code == 200
        try:
            wait_for(app, olga, result.every(), "every run paused", lambda r: r["state"] == "paused")
        except TimeoutError:
            print({r["run_id"]: (r["state"], [s["state"] for s in r["steps"]])
                   for r in runs(app, olga, result.every())})
            print(app.process.log_tail())
            raise
        time.sleep(2)  # anything that would still start would show by now
        result.while_thrown = {r["run_id"]: r for r in runs(app, olga, result.every())}
        result.activity_thrown = arm.activity()
        result.paused_listed = [r["run_id"] for r in olga.get(
            f"{app.base_url}/api/runs", params={"state": "paused"}, headers={"Accept": "application/json"},
            timeout=30).json()["runs"]]
        result.page = olga.get(f"{app.base_url}/api/runs/{ids['after'][0]}", headers={"Accept": "text/html"},
                               timeout=30).text

        lifted = switch(app, olga, False, "rolled back")
        assert lifted.status_code == 200, lifted.text
        result.lift_answer = lifted.json()
        wait_for(app, olga, result.every(), "every run ended", lambda r: r["state"] in scenario.TERMINAL)
        result.ended = {r["run_id"]: r for r in runs(app, olga, result.every())}
        result.activity = arm.activity()
        try:
            yield result
        finally:
            arm.reset()


def test_no_write_starts_at_arm_after_the_switch_is_thrown(thrown: Thrown) -> None:
    late = [a for a in thrown.activity_thrown if started_at_arm(a) and at(a["time"]) >= thrown.thrown_at]
    assert late == []
    accepted_before = [a for a in thrown.activity_thrown if a["outcome"] == "Accepted"]
    assert len(accepted_before) == IN_FLIGHT  # the in-flight first writes, and nothing else


def test_an_operation_arm_accepted_before_the_throw_was_followed_to_its_end(thrown: Thrown) -> None:
    for run_id in thrown.ids["in flight"]:
        run = thrown.while_thrown[run_id]
        assert [s["state"] for s in run["steps"]] == ["succeeded", "pending"]
    finished = [a for a in thrown.activity_thrown if a["outcome"] == "Succeeded" and a["operationId"]]
    assert len(finished) == IN_FLIGHT


def test_every_run_waited_paused_with_its_step_as_it_was(thrown: Thrown) -> None:
    for run_id in thrown.ids["after"]:
        assert [s["state"] for s in thrown.while_thrown[run_id]["steps"]] == ["pending"]
    consent = thrown.while_thrown[thrown.ids["consent"][0]]
    assert [q["state"] for q in consent["requests"]] == ["granted"]  # the decision was recorded
    for run in thrown.while_thrown.values():
        assert run["paused"]["reason"] == "bad deploy in westeurope"
        assert run["paused"]["thrown_by"] == OLGA


def test_the_runs_list_filters_the_paused_runs(thrown: Thrown) -> None:
    assert sorted(thrown.paused_listed) == sorted(thrown.every())


def test_a_paused_runs_page_says_by_whom_when_and_why_first(thrown: Thrown) -> None:
    top = thrown.page[thrown.page.index("<body>"):thrown.page.index("<h1>")]
    assert "Paused by the kill switch: bad deploy in westeurope, thrown by olga@contoso.test at" in top


def test_lifting_resumed_every_paused_run_and_each_completed(thrown: Thrown) -> None:
    assert thrown.lift_answer["resumed"] == len(thrown.every())
    assert {r["state"] for r in thrown.ended.values()} == {"succeeded"}
    for run in thrown.ended.values():
        events = [e["event"] for e in run["timeline"]]
        assert events.count("run_paused") == 1
        assert events.count("run_resumed") == 1
        paused = next(e for e in run["timeline"] if e["event"] == "run_paused")
        assert paused["details"]["switch_reason"] == "bad deploy in westeurope"


def test_no_write_was_sent_twice(thrown: Thrown) -> None:
    accepted = [a for a in thrown.activity if a["outcome"] == "Accepted"]
    assert len(accepted) == IN_FLIGHT * 2 + AFTER + 1
    for run in thrown.ended.values():
        ids = [s["correlation_id"] for s in run["steps"]]
        mine = [a for a in accepted if a["correlationId"] in ids]
        assert len(mine) == len(run["steps"])  # one write per step, none repeated
        assert len({a["correlationId"] for a in mine}) == len(mine)


def test_the_switchs_throw_and_lift_are_audited_with_who_and_why(thrown: Thrown) -> None:
    shown = thrown.olga.get(f"{thrown.app.base_url}/api/kill-switch", headers={"Accept": "application/json"},
                            timeout=30).json()
    assert shown["engaged"] is False
    assert [(h["event"], h["by"], h["reason"]) for h in shown["history"][:2]] == [
        ("switch_lifted", OLGA, "rolled back"), ("switch_thrown", OLGA, "bad deploy in westeurope")]


def test_an_approver_cannot_throw_the_switch(thrown: Thrown) -> None:
    refused = thrown.alice.post(f"{thrown.app.base_url}/api/kill-switch", json={"engaged": True, "reason": "x"},
                                timeout=30)
    assert refused.status_code == 403
