"""The host is killed (SIGKILL) while runs are in flight, with 30 runs held at each point where a step
can be interrupted, then started again against the same stand-ins and storage. Every run must end; none
may be lost or act twice (the ARM stand-in's activity log, by the correlation id each run recorded); and
no run whose interrupted step was a read or a write ARM had accepted may end "failed".

The kill points, each held open by a stand-in fault so that all 150 runs are there at the one kill:
- during a read step: ARM's answer to the GET is held back (slow_answer);
- after ARM accepted a write, while it is followed: the operation runs on (long_operation);
- between sending a write and ARM's answer: ARM acts, the answer is held back (slow_answer on POST);
- after a step's outcome is committed, before the next message is sent: Service Bus holds the send;
- while waiting for a person's credentials: the request is open (the agent may only read that VM).
One kill for all points keeps the test to one wait for the dead host's message locks to expire.
"""

from __future__ import annotations

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
from tests.e2e.journeys import AGENT, ALICE, ALICE_OID

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

RUNS_PER_POINT = 30
VM1 = scenario.VM_WEB_01
VM2 = VM1.replace("vm-web-01", "vm-web-02")
READ_RULE, WRITE_RULE = "e2e-read-autonomous", "e2e-write-autonomous"
HOLD_SECONDS = 240  # a held answer waits far longer than it takes to kill the host
OPERATION_SECONDS = 75  # an accepted write's operation outlasts the kill, then ends on its own
LOCK_SECONDS = 20.0
STAGE_TIMEOUT = 90.0
SETTLE_TIMEOUT = 180.0  # the dead host's message locks expire, then everything moves on


seen: set[str] = set()  # runs already counted at an earlier point


@dataclass(frozen=True)
class Point:
    name: str
    rule: str
    resource: str
    ends: str  # the state every run interrupted here must end in


READ = Point("during a read step", READ_RULE, VM2, "succeeded")
UNANSWERED = Point("between sending a write and ARM's answer", WRITE_RULE, VM2, "failed")
ACCEPTED = Point("while following a write ARM accepted", WRITE_RULE, VM2, "succeeded")
COMMITTED = Point("after the outcome commit, before the next send", READ_RULE, VM1, "succeeded")
CREDENTIALS = Point("while waiting for credentials", WRITE_RULE, VM1, "succeeded")
POINTS = (READ, UNANSWERED, ACCEPTED, COMMITTED, CREDENTIALS)


@dataclass
class Killed:
    """What the kill left behind once every run ended: the runs at each point, as the app reports them."""

    app: App
    reader: requests.Session
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # point name -> runs (JSON)
    activity: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def writes_of(self, run: dict[str, Any]) -> list[dict[str, Any]]:
        ids = {s["correlation_id"] for s in run["steps"] if s["kind"] == "write" and s["correlation_id"]}
        return [a for a in self.activity if a["correlationId"] in ids and a["outcome"] == "Accepted"]


def raise_alerts(app: App, reader: requests.Session, point: Point) -> list[str]:
    """`RUNS_PER_POINT` alerts, each from a rule of its own (one run each); the run ids they made."""
    cutoff = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))
    tag = uuid.uuid4().hex[:8]
    for i in range(RUNS_PER_POINT):
        document = scenario.common_alert(point.rule, point.resource, alert_id=f"kill-{tag}-{i}")
        document["data"]["essentials"]["alertRuleID"] = (
            f"/subscriptions/{scenario.SUBSCRIPTION}/providers/Microsoft.Insights/metricAlerts/kill-{tag}-{i}")
        response = scenario.post_alert(app.base_url, app.function_key, document)
        assert response.status_code == 202, response.text

    def made() -> list[str] | None:
        listed = reader.get(f"{app.base_url}/api/runs", params={"limit": "500"},
                            headers={"Accept": "application/json"}, timeout=30).json()["runs"]
        ids = [r["run_id"] for r in listed if r["alert_rule"] == point.rule and r["created_at"] >= cutoff
               and r["resource_id"].lower() == point.resource.lower() and r["run_id"] not in seen]
        return ids if len(ids) == RUNS_PER_POINT else None

    ids: list[str] = scenario.wait_until(made, STAGE_TIMEOUT, f"{RUNS_PER_POINT} runs {point.name}", 0.5)
    seen.update(ids)
    return ids


def runs(app: App, reader: requests.Session, ids: list[str]) -> list[dict[str, Any]]:
    return [scenario.get_run(reader, app.base_url, run_id) for run_id in ids]


def wait_for(app: App, reader: requests.Session, ids: list[str], what: str,
             condition: Any, timeout: float = STAGE_TIMEOUT) -> None:
    scenario.wait_until(lambda: all(condition(r) for r in runs(app, reader, ids)), timeout, what, 0.5)


@pytest.fixture(scope="module")
def killed(stand_ins: LocalStack) -> Iterator[Killed]:
    arm, bus = stand_ins.arm, stand_ins.service_bus
    assert arm is not None
    assert bus is not None
    arm.reset()
    # attempt and execution lock a message for 5 minutes (topology.py), so a dead host's messages would
    # come back after 5; the kill is the same with a lock of LOCK_SECONDS, and the wait is shorter.
    locks = {q: bus.set_lock_duration(q, LOCK_SECONDS) for q in ("attempt", "execution")}
    arm.assign_role(AGENT, "Virtual Machine Contributor", VM2)  # the agent's own writes go to VM2 only
    # Every run held at once is an invocation in flight: room for all of them on one host.
    for app in start_app(stand_ins, GATES_AUTONOMY_CEILING="autonomous",
                         AzureFunctionsJobHost__extensions__serviceBus__maxConcurrentCalls="200"):
        reader = app.session(ALICE)
        result = Killed(app, reader)
        started = time.monotonic()
        ids: dict[str, list[str]] = {}

        ids[CREDENTIALS.name] = raise_alerts(app, reader, CREDENTIALS)
        wait_for(app, reader, ids[CREDENTIALS.name], "credential requests",
                 lambda r: r["state"] == "awaiting_credentials" and any(q["state"] == "pending"
                                                                        for q in r["requests"]))

        arm.add_fault("slow_answer", resource=VM2, method="GET", seconds=HOLD_SECONDS, count=RUNS_PER_POINT)
        ids[READ.name] = raise_alerts(app, reader, READ)
        scenario.wait_until(lambda: arm.held_answers(VM2) == RUNS_PER_POINT, STAGE_TIMEOUT, "reads held", 0.2)

        arm.add_fault("slow_answer", resource=VM2, method="POST", seconds=HOLD_SECONDS, count=RUNS_PER_POINT)
        ids[UNANSWERED.name] = raise_alerts(app, reader, UNANSWERED)
        scenario.wait_until(lambda: arm.held_answers(VM2) == 2 * RUNS_PER_POINT, STAGE_TIMEOUT, "writes held", 0.2)

        arm.add_fault("long_operation", resource=VM2, seconds=OPERATION_SECONDS, count=RUNS_PER_POINT)
        ids[ACCEPTED.name] = raise_alerts(app, reader, ACCEPTED)
        wait_for(app, reader, ids[ACCEPTED.name], "operations recorded",
                 lambda r: r["steps"][0]["operation"] is not None)

        arm.add_fault("slow_answer", resource=VM1, method="GET", seconds=HOLD_SECONDS, count=RUNS_PER_POINT)
        ids[COMMITTED.name] = raise_alerts(app, reader, COMMITTED)
        scenario.wait_until(lambda: arm.held_answers(VM1) == RUNS_PER_POINT, STAGE_TIMEOUT, "reads held", 0.2)
        bus.hold_sends("notifications")  # the run-ended message each commit queues gets stuck mid-send
        arm.release_answers(VM1)
        wait_for(app, reader, ids[COMMITTED.name], "outcomes committed", lambda r: r["state"] == "succeeded")
        result.seconds["staging"] = time.monotonic() - started

        open_operations = [o for o in arm.state.operations.values() if o.status == "InProgress"]
        assert len(open_operations) == 2 * RUNS_PER_POINT, "every accepted write still running at the kill"
        dead = app.process
        app.kill()
        assert not dead.running
        killed_at = time.monotonic()
        arm.release_answers()
        arm.clear_faults()
        bus.stop_holding()
        app.restart()
        reader = result.reader = app.session(ALICE)  # sign-in sessions do not outlive their host

        for run in runs(app, reader, ids[CREDENTIALS.name]):
            request = next(q for q in run["requests"] if q["state"] == "pending")
            link = f"{app.base_url}/api/runs/{run['run_id']}/requests/{request['request_id']}"
            assert scenario.decide(reader, link, "approve").status_code == 200

        everything = [run_id for group in ids.values() for run_id in group]
        try:
            wait_for(app, reader, everything, "every run to end", lambda r: r["state"] in scenario.TERMINAL,
                     SETTLE_TIMEOUT)
        except TimeoutError:
            for name, group in ids.items():  # where each point's runs stopped, to read with the host's log
                print(name, sorted({(r["state"], tuple(s["state"] for s in r["steps"]))
                                    for r in runs(app, reader, group)}))
            print(app.process.log_tail())
            raise
        result.seconds["kill to all ended"] = time.monotonic() - killed_at
        result.runs = {name: runs(app, reader, group) for name, group in ids.items()}
        result.activity = arm.activity()
        print("\nhost killed with", len(everything), "runs in flight at", len(POINTS), "points;",
              {k: round(v, 1) for k, v in result.seconds.items()})
        for point in POINTS:
            ended: dict[str, int] = {}
            for run in result.runs[point.name]:
                ended[run["state"]] = ended.get(run["state"], 0) + 1
            print(f"  {point.name}: {ended}")
        try:
            yield result
        finally:
            arm.reset()
            for queue, seconds in locks.items():
                bus.set_lock_duration(queue, seconds)


@pytest.mark.parametrize("point", POINTS, ids=lambda p: p.name.replace(" ", "-"))
def test_every_run_interrupted_there_ends_as_it_should(killed: Killed, point: Point) -> None:
    states = [r["state"] for r in killed.runs[point.name]]
    assert len(states) == RUNS_PER_POINT  # none lost
    assert states == [point.ends] * RUNS_PER_POINT, [r["outcome"] for r in killed.runs[point.name]]


@pytest.mark.parametrize("point", [UNANSWERED, ACCEPTED, CREDENTIALS], ids=lambda p: p.name.replace(" ", "-"))
def test_no_write_interrupted_there_was_sent_twice(killed: Killed, point: Point) -> None:
    assert [len(killed.writes_of(r)) for r in killed.runs[point.name]] == [1] * RUNS_PER_POINT


def test_every_write_on_a_vm_is_one_of_a_runs_writes(killed: Killed) -> None:
    ours = {a["correlationId"] for point in POINTS for r in killed.runs[point.name] for a in killed.writes_of(r)}
    accepted = [a for a in killed.activity if a["outcome"] == "Accepted"]
    assert len(accepted) == 3 * RUNS_PER_POINT
    assert {a["correlationId"] for a in accepted} == ours


def test_a_read_interrupted_was_run_again(killed: Killed) -> None:
    # Held by ARM when the host died, the read had written nothing (its claim goes with its outcome):
    # the redelivery read again, and the step shows one attempt, the one that finished.
    for run in killed.runs[READ.name]:
        events = [(e["event"], e["details"].get("step")) for e in run["timeline"]]
        assert events.count(("action_attempted", 0)) == 1
        assert events.count(("action_executed", 0)) == 1


def test_an_accepted_write_interrupted_was_followed_to_arms_own_end(killed: Killed) -> None:
    for run in killed.runs[ACCEPTED.name]:
        assert "action_resumed" in [e["event"] for e in run["timeline"]]
        [write] = killed.writes_of(run)
        done = [a for a in killed.activity if a["operationId"] == write["operationId"] and a["outcome"] == "Succeeded"]
        assert len(done) == 1


def test_a_persons_write_after_the_restart_ran_as_that_person(killed: Killed) -> None:
    for run in killed.runs[CREDENTIALS.name]:
        assert [w["principalId"] for w in killed.writes_of(run)] == [ALICE_OID]


def test_a_write_with_no_answer_says_outcome_unknown_at_the_top_of_its_page(killed: Killed) -> None:
    for run in killed.runs[UNANSWERED.name]:
        assert run["outcome_unknown"] is True
        correlation_id = run["steps"][0]["correlation_id"]
        page = killed.reader.get(f"{killed.app.base_url}/api/runs/{run['run_id']}",
                                 headers={"Accept": "text/html"}, timeout=30).text
        top = page[page.index("<body>"):page.index("<h1>")]
        assert "Outcome unknown" in top
        assert correlation_id in top


def test_a_write_with_no_answer_is_found_in_the_activity_log_by_the_id_the_run_shows(killed: Killed) -> None:
    for run in killed.runs[UNANSWERED.name]:
        [write] = killed.writes_of(run)
        assert write["resourceId"].lower() == VM2.lower()
        assert write["correlationId"] == run["steps"][0]["correlation_id"]


def test_a_write_with_no_answer_says_outcome_unknown_in_its_mail(killed: Killed) -> None:
    mail = killed.app.stack.mail
    assert mail is not None
    for run in killed.runs[UNANSWERED.name]:
        message = mail.wait_for(lambda m, run_id=run["run_id"]: "outcome unknown" in str(m["Subject"])
                                and run_id in scenario.body_text(m), timeout=30)
        assert run["steps"][0]["correlation_id"] in scenario.body_text(message).split("\n\n")[0]


def test_a_message_stuck_when_the_host_died_still_went_out_once(killed: Killed) -> None:
    mail = killed.app.stack.mail
    assert mail is not None
    for run in killed.runs[COMMITTED.name]:
        mail.wait_for(lambda m, run_id=run["run_id"]: "Run succeeded" in str(m["Subject"])
                      and run_id in scenario.body_text(m), timeout=60)
    for run in killed.runs[COMMITTED.name]:
        ended = [m for m in mail.messages() if "Run succeeded" in str(m["Subject"])
                 and run["run_id"] in scenario.body_text(m)]
        assert len(ended) == 1
