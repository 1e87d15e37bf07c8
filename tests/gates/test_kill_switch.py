"""The kill switch through the real function app in memory: thrown, no ARM call starts and runs wait in
`paused`; lifted, each paused run goes on once (no ARM call repeated), re-checking what lapsed. The
switch's HTTP route refuses anyone but a signed-in Gates.Admin, and a browser's POST without its form."""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import replace
from typing import Any

import azure.functions as func
import pytest

from gates.killswitch import FORM_PURPOSE, current, resume_paused
from gates.relay import sweep_stalled
from shared.core.links import form_token
from shared.core.model import Actor, RequestKind, RunState, StepState
from shared.core.pause import KillSwitch, SwitchChange, SwitchEntry, setting_switch
from shared.telemetry import LoggingAuditSink
from shared.topology import Queue
from tests.fakes import HostStopped
from tests.pipeline import ALICE, LINK_KEY, Pipeline, User, alert, plan_book, principal_headers

READ = "Microsoft.Compute/virtualMachines/read"
RESTART = "Microsoft.Compute/virtualMachines/restart/action"
OLGA = User("0a6a0000-0000-4000-8000-000000000009", "olga@contoso.test", ("Gates.Admin",))
OLGA_ACTOR = Actor.person(OLGA.object_id, OLGA.upn)
ROUTE = "kill-switch"
URL = "https://gates.example/api/kill-switch"


class RecordingSink(LoggingAuditSink):
    def __init__(self) -> None:
        self.switch_entries: list[SwitchEntry] = []
        self.events: list[tuple[str, dict[str, Any]]] = []

    def switch_changed(self, entry: SwitchEntry) -> None:
        super().switch_changed(entry)
        self.switch_entries.append(entry)

    def emit(self, run: Any, event: Any, stage: str) -> None:
        super().emit(run, event, stage)
        self.events.append((event.event, event.details))


def new(mode: str = "autonomous", steps: list[str] | None = None, *, agent_can: set[str] | None = None) -> Pipeline:
    return Pipeline(plan_book(mode, steps or ["vm.read_instance_view", "vm.restart"]),
                    agent_can={READ, RESTART} if agent_can is None else agent_can, user_can={READ, RESTART})


def post(p: Pipeline, document: dict[str, Any], user: User = OLGA, *, bearer: bool = True,
         token: str | None = None, form: bool = False) -> func.HttpResponse:
    headers = principal_headers(user)
    if bearer:
        headers["Authorization"] = "Bearer an-entra-token-easy-auth-validated"
    if form:
        body = "&".join(f"{k}={v}" for k, v in {**{k: str(v).lower() if isinstance(v, bool) else v
                                                   for k, v in document.items()},
                                                **({"form_token": token} if token is not None else {})}.items())
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return p.http("POST", ROUTE, URL, headers=headers, body=body.encode())
    headers["Content-Type"] = "application/json"
    if token is not None:
        document = {**document, "form_token": token}
    return p.http("POST", ROUTE, URL, headers=headers, body=json.dumps(document).encode())


def throw(p: Pipeline, reason: str = "bad deploy in westeurope") -> dict[str, Any]:
    response = post(p, {"engaged": True, "reason": reason})
    assert response.status_code == 200, response.get_body()
    return dict(json.loads(response.get_body()))


def lift(p: Pipeline, reason: str = "rolled back") -> dict[str, Any]:
    response = post(p, {"engaged": False, "reason": reason})
    assert response.status_code == 200, response.get_body()
    return dict(json.loads(response.get_body()))


def show(p: Pipeline, user: User | None = OLGA, method: str = "GET") -> func.HttpResponse:
    return p.http(method, ROUTE, URL, headers=principal_headers(user) if user else {})


def all_arm_calls(p: Pipeline) -> int:
    return len(p.arm.calls) + len(p.arm.previews) + len(p.arm.permission_reads)


# ------------------------------------------------------------------------------------------ thrown


def test_with_the_switch_thrown_a_new_run_calls_arm_not_at_all_and_waits_paused() -> None:
    p = new()
    throw(p)
    p.send_alert(alert())
    p.drain()
    run = p.run()
    assert run.state is RunState.PAUSED
    assert [s.state for s in run.steps] == [StepState.PENDING, StepState.PENDING]
    assert all_arm_calls(p) == 0
    assert p.store.paused_runs() == [run.run_id]


def test_a_run_in_flight_stops_before_its_next_arm_call() -> None:
    p = new()
    p.send_alert(alert())
    p.drain(skip={Queue.ATTEMPT.value})
    first = p.bus.take(Queue.ATTEMPT.value)
    assert first is not None
    p.deliver(first)  # step 1 (a read) runs; step 2's message is queued
    throw(p)
    p.drain()
    run = p.run()
    assert run.state is RunState.PAUSED
    assert [s.state for s in run.steps] == [StepState.SUCCEEDED, StepState.PENDING]
    assert p.arm.calls == [("vm.read_instance_view", "agent")]
    assert p.arm.resource.executed == []


def test_lifting_resumes_the_run_which_completes_with_each_call_once() -> None:
    p = new()
    throw(p)
    p.send_alert(alert())
    p.drain()
    answer = lift(p)
    assert answer["resumed"] == 1
    p.drain()
    run = p.run()
    assert run.state is RunState.SUCCEEDED
    assert p.arm.calls == [("vm.read_instance_view", "agent"), ("vm.restart", "agent")]
    assert p.arm.resource.executed == [("vm.restart", "agent")]
    assert p.store.paused_runs() == []
    events = p.events()
    assert events.index("run_paused") < events.index("run_resumed") < events.index("action_executed")


def test_a_resume_delivered_twice_and_resumed_again_by_the_sweeper_acts_once() -> None:
    p = new(steps=["vm.restart"])
    throw(p)
    p.send_alert(alert())
    p.drain()
    lift(p)
    [resume_message] = [d for d in p.bus.queues[Queue.ATTEMPT.value]]
    p.deliver(replace(resume_message, delivery_count=1))
    p.deliver(replace(resume_message, delivery_count=2))  # the broker handed it out again
    p.clock.advance(dt.timedelta(minutes=20))
    sweep_stalled(p.services)
    lift(p)  # a second lift finds nothing paused
    p.drain()
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vm.restart", "agent")]
    assert p.events().count("run_resumed") == 1


def test_two_lifts_at_once_resume_each_run_once() -> None:
    p = new(steps=["vm.restart"])
    throw(p)
    p.send_alert(alert())
    p.drain()
    run_id = p.run().run_id
    lifted = [KillSwitch(False, "rolled back", OLGA_ACTOR, p.clock.now())] * 2
    p.switches.put(SwitchChange(replace(lifted[0], etag=p.switches.get().etag), None))
    p.store.hold_reads(2)  # both resumes (a lift and the sweeper, say) read the same version of the run
    threads = [threading.Thread(target=resume_paused, args=(p.services, run_id, s, "test")) for s in lifted]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    p.drain()
    assert p.run().state is RunState.SUCCEEDED
    assert p.events().count("run_resumed") == 1
    assert p.arm.resource.executed == [("vm.restart", "agent")]


def test_the_switch_thrown_between_the_claim_and_the_call_gives_the_step_back_unsent() -> None:
    p = new(steps=["vm.restart"])
    commit = p.store.commit

    def thrown_once_the_claim_is_written(change: Any) -> Any:
        committed = commit(change)
        if committed.steps[0].state is StepState.ATTEMPTING and not p.switches._switch.engaged:
            # another host throws it after this one wrote its claim, before it calls ARM
            p.switches._switch = replace(p.switches._switch, engaged=True, reason="thrown mid-claim",
                                         by=OLGA_ACTOR, at=p.clock.now())
        return committed

    p.store.commit = thrown_once_the_claim_is_written  # type: ignore[method-assign]
    p.send_alert(alert())
    p.drain()
    p.store.commit = commit  # type: ignore[method-assign]
    run = p.run()
    assert run.state is RunState.PAUSED
    assert run.steps[0].state is StepState.PENDING
    assert run.steps[0].claim_message_id is None
    assert p.arm.calls == []
    lift(p)
    p.drain()
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vm.restart", "agent")]


def test_an_operation_arm_accepted_is_followed_to_its_end_while_the_switch_is_thrown() -> None:
    p = new(steps=["vm.restart", "vm.read_instance_view"])
    p.send_alert(alert())
    p.drain(skip={Queue.ATTEMPT.value})
    delivery = p.bus.take(Queue.ATTEMPT.value)
    assert delivery is not None
    p.arm.stop_host = "after_accept"
    with pytest.raises(HostStopped):
        p.queue_functions[Queue.ATTEMPT.value](p.sb_message(delivery))
    throw(p)
    p.bus.put_back(delivery)  # the dead host's message comes back
    p.drain()
    run = p.run()
    assert run.steps[0].state is StepState.SUCCEEDED  # followed: polling changes nothing in Azure
    assert ("resume", "agent") in p.arm.calls
    assert run.state is RunState.PAUSED
    assert run.steps[1].state is StepState.PENDING
    assert p.arm.resource.executed == [("vm.restart", "agent")]  # never sent again
    lift(p)
    p.drain()
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vm.restart", "agent")]


# ----------------------------------------------------------------------------------- people, paused


def test_consent_given_while_thrown_is_recorded_but_nothing_acts_until_lifted() -> None:
    p = new("review", steps=["vm.restart"])
    p.send_alert(alert())
    p.drain()
    previews = len(p.arm.previews)
    throw(p)
    p.decide(RequestKind.CONSENT, "approve")
    run = p.run()
    assert run.state is RunState.PAUSED
    assert "consent_granted" in p.events()
    assert len(p.arm.previews) == previews
    assert p.arm.calls == []
    lift(p)
    p.drain()
    assert p.run().state is RunState.SUCCEEDED
    assert len(p.arm.previews) == previews + 1  # the precondition is read again before the write
    assert p.arm.resource.executed == [("vm.restart", "agent")]


def test_a_run_paused_longer_than_consent_lasts_asks_consent_again_saying_why() -> None:
    p = new("review", steps=["vm.restart"])
    p.send_alert(alert())
    p.drain()
    throw(p)
    p.decide(RequestKind.CONSENT, "approve")
    assert p.run().state is RunState.PAUSED
    p.clock.advance(dt.timedelta(minutes=31))
    lift(p)
    p.drain()
    run = p.run()
    assert run.state is RunState.AWAITING_CONSENT
    assert p.arm.calls == []  # the stale yes was not acted on
    resumed = next(e for e in p.store.list_audit(run.run_id) if e.event == "run_resumed")
    assert "longer than consent lasts" in resumed.summary
    assert len([r for r in run.requests if r.kind is RequestKind.CONSENT]) == 2
    p.decide(RequestKind.CONSENT, "approve")
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vm.restart", "agent")]


def test_a_no_to_consent_asked_again_after_a_long_pause_is_a_plain_denial() -> None:
    p = new("review", steps=["vm.restart"])
    p.send_alert(alert())
    p.drain()
    throw(p)
    p.decide(RequestKind.CONSENT, "approve")
    p.clock.advance(dt.timedelta(minutes=31))
    lift(p)
    p.drain()
    p.decide(RequestKind.CONSENT, "deny")
    assert p.run().state is RunState.DENIED


def test_granted_credentials_wait_sealed_while_paused_and_are_used_once_lifted() -> None:
    p = new(steps=["vm.restart"], agent_can={READ})
    p.send_alert(alert())
    p.drain()
    throw(p)
    p.decide(RequestKind.CREDENTIALS, "approve")
    run = p.run()
    assert run.state is RunState.PAUSED
    assert run.steps[0].state is StepState.AWAITING_CREDENTIALS
    assert any(r.sealed_assertion for r in run.requests)  # the grant waits with its step
    assert p.arm.resource.executed == []
    lift(p)
    p.drain()
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vm.restart", "user:alice")]
    assert not any(r.sealed_assertion for r in p.run().requests)


def test_a_grant_older_than_a_grant_lasts_is_asked_for_again() -> None:
    p = new(steps=["vm.restart"], agent_can={READ})
    p.send_alert(alert())
    p.drain()
    throw(p)
    p.decide(RequestKind.CREDENTIALS, "approve")
    p.clock.advance(dt.timedelta(minutes=16))
    lift(p)
    p.drain()
    run = p.run()
    assert run.state is RunState.AWAITING_CREDENTIALS
    assert p.arm.resource.executed == []
    assert not any(r.sealed_assertion for r in run.requests)


# --------------------------------------------------------------------------------------- the setting


def test_the_setting_pauses_runs_and_an_admin_cannot_lift_it() -> None:
    p = new(steps=["vm.restart"])
    p.services.policy = replace(p.services.policy, kill_switch=setting_switch(True, "region outage", p.clock.now()))
    p.send_alert(alert())
    p.drain()
    assert p.run().state is RunState.PAUSED
    response = post(p, {"engaged": False, "reason": "try"})
    assert response.status_code == 409
    answer = json.loads(response.get_body())
    assert "GATES_KILL_SWITCH" in answer["message"]
    assert answer["held_by_setting"] is True
    p.clock.advance(dt.timedelta(minutes=20))
    sweep_stalled(p.services)
    p.drain()
    assert p.run().state is RunState.PAUSED
    assert p.arm.calls == []


def test_the_setting_turned_off_resumes_paused_runs_at_the_next_sweep() -> None:
    p = new(steps=["vm.restart"])
    p.services.policy = replace(p.services.policy, kill_switch=setting_switch(True, "region outage", p.clock.now()))
    p.send_alert(alert())
    p.drain()
    p.services.policy = replace(p.services.policy, kill_switch=setting_switch(False, None, p.clock.now()))  # restart
    sweep_stalled(p.services)
    p.drain()
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vm.restart", "agent")]


def test_a_lift_whose_host_died_before_resuming_is_finished_by_the_sweeper() -> None:
    p = new(steps=["vm.restart"])
    throw(p)
    p.send_alert(alert())
    p.drain()
    stored = p.switches.get()
    p.switches.put(SwitchChange(replace(stored, engaged=False), None))  # lifted; the host died right after
    p.drain()
    assert p.run().state is RunState.PAUSED
    sweep_stalled(p.services)
    p.drain()
    assert p.run().state is RunState.SUCCEEDED


def test_the_setting_is_audited_when_a_host_starts_with_it() -> None:
    p = new()
    sink = RecordingSink()
    p.services.audit_sink = sink
    p.services.policy = replace(p.services.policy, kill_switch=setting_switch(True, "region outage", p.clock.now()))
    current(p.services)
    p.services.switch_setting_noted = False  # a second host, starting with the same setting
    current(p.services)
    current(p.services)
    assert [(e.event, e.reason, e.source.value) for e in p.switches.history()] == [
        ("switch_thrown", "region outage", "setting")]
    assert len(sink.switch_entries) == 1


# -------------------------------------------------------------------------------------------- HTTP


def test_the_switch_needs_a_sign_in() -> None:
    p = new()
    assert show(p, None).status_code == 401
    assert p.http("POST", ROUTE, URL, headers={"Content-Type": "application/json"},
                  body=b'{"engaged": true, "reason": "x"}').status_code == 401
    assert not p.switches.get().engaged


def test_the_switch_needs_the_admin_role() -> None:
    p = new()
    assert show(p, ALICE).status_code == 403  # an approver is no admin
    response = post(p, {"engaged": True, "reason": "x"}, ALICE)
    assert response.status_code == 403
    assert "Gates.Admin" in json.loads(response.get_body())["message"]
    assert not p.switches.get().engaged


def test_reading_the_switch_changes_nothing() -> None:
    p = new()
    throw(p)
    before = (p.switches.get(), p.switches.history())
    for method in ("GET", "HEAD"):
        response = show(p, OLGA, method)
        assert response.status_code == 200
    assert (p.switches.get(), p.switches.history()) == before
    shown = json.loads(show(p).get_body())
    assert (shown["engaged"], shown["reason"], shown["by"]) == (True, "bad deploy in westeurope", OLGA.upn)
    assert shown["history"][0]["event"] == "switch_thrown"


def test_a_browser_post_without_its_form_token_is_refused() -> None:
    p = new()
    assert post(p, {"engaged": True, "reason": "x"}, bearer=False, form=True).status_code == 403
    assert post(p, {"engaged": True, "reason": "x"}, bearer=False).status_code == 403  # JSON rides the cookie too
    assert not p.switches.get().engaged


def test_a_forged_form_token_is_refused() -> None:
    p = new()
    someone_elses = form_token(LINK_KEY, ALICE.object_id, FORM_PURPOSE)
    a_decisions = form_token(LINK_KEY, OLGA.object_id, "some-request-id")
    for token in (someone_elses, a_decisions, "0" * 32):
        assert post(p, {"engaged": True, "reason": "x"}, bearer=False, form=True, token=token).status_code == 403
    assert not p.switches.get().engaged


def test_a_form_token_shown_hours_ago_no_longer_throws_the_switch() -> None:
    p = new()
    token = json.loads(show(p).get_body())["form_token"]
    p.clock.advance(dt.timedelta(hours=3))
    assert post(p, {"engaged": True, "reason": "x"}, bearer=False, form=True, token=token).status_code == 403
    assert not p.switches.get().engaged


def test_a_browser_post_with_the_form_token_the_get_issued_throws_the_switch() -> None:
    p = new()
    token = json.loads(show(p).get_body())["form_token"]
    response = post(p, {"engaged": True, "reason": "db failover"}, bearer=False, form=True, token=token)
    assert response.status_code == 200
    assert p.switches.get().engaged


def test_throwing_needs_a_reason() -> None:
    p = new()
    response = post(p, {"engaged": True})
    assert response.status_code == 400
    assert not p.switches.get().engaged


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"engaged": "maybe", "reason": "x"}',
                                  b'{"reason": "x"}', b'{"engaged": true, "reason": 7}'])
def test_a_malformed_body_is_a_400(body: bytes) -> None:
    p = new()
    headers = {**principal_headers(OLGA), "Authorization": "Bearer t", "Content-Type": "application/json"}
    assert p.http("POST", ROUTE, URL, headers=headers, body=body).status_code == 400


def test_every_throw_and_lift_is_audited_and_sent_to_application_insights() -> None:
    p = new()
    sink = RecordingSink()
    p.services.audit_sink = sink
    throw(p, "bad deploy")
    throw(p, "again")  # already thrown: nothing new
    lift(p, "rolled back")
    history = p.switches.history()
    assert [(e.event, e.actor.id, e.reason) for e in history] == [
        ("switch_lifted", OLGA.object_id, "rolled back"), ("switch_thrown", OLGA.object_id, "bad deploy")]
    assert [e.event for e in sink.switch_entries] == ["switch_thrown", "switch_lifted"]


def test_the_run_events_carry_the_switchs_reason_to_application_insights() -> None:
    p = new(steps=["vm.restart"])
    sink = RecordingSink()
    p.services.audit_sink = sink
    throw(p, "bad deploy")
    p.send_alert(alert())
    p.drain()
    lift(p)
    p.drain()
    details = dict(sink.events)
    assert details["run_paused"]["switch_reason"] == "bad deploy"
    assert details["run_resumed"]["paused_reason"] == "bad deploy"


# ------------------------------------------------------------------------------------------ visible


def test_the_run_json_and_the_list_show_the_run_paused() -> None:
    p = new(steps=["vm.restart"])
    throw(p, "bad deploy")
    p.send_alert(alert())
    p.drain()
    run_id = p.run().run_id
    reader = principal_headers(ALICE)
    shown = json.loads(p.http("GET", "runs/{run_id}", f"https://gates.example/api/runs/{run_id}",
                              headers={**reader, "Accept": "application/json"},
                              route_params={"run_id": run_id}).get_body())
    assert shown["state"] == "paused"
    assert (shown["paused"]["reason"], shown["paused"]["thrown_by"]) == ("bad deploy", OLGA.upn)
    listed = json.loads(p.http("GET", "runs", "https://gates.example/api/runs",
                               headers={**reader, "Accept": "application/json"},
                               params={"state": "paused"}).get_body())
    assert [r["run_id"] for r in listed["runs"]] == [run_id]


def paused_run_page(reason: str) -> str:
    p = new(steps=["vm.restart"])
    throw(p, reason)
    p.send_alert(alert())
    p.drain()
    run_id = p.run().run_id
    return p.http("GET", "runs/{run_id}", f"https://gates.example/api/runs/{run_id}",
                  headers={**principal_headers(ALICE), "Accept": "text/html"},
                  route_params={"run_id": run_id}).get_body().decode()


def test_the_run_page_says_who_paused_it_when_and_why() -> None:
    page = paused_run_page("bad deploy")
    assert "Paused by the kill switch" in page
    assert "bad deploy" in page
    assert OLGA.upn in page


def test_the_run_page_says_when_the_switch_was_thrown_in_words_not_iso() -> None:
    page = paused_run_page("bad deploy")
    headline = page[page.index("Paused by the kill switch"):].split("<", 1)[0]
    assert " UTC (" in headline
    assert "+00:00" not in headline



def test_a_switch_that_cannot_be_read_gives_the_claimed_step_back_and_the_redelivery_runs_it_once() -> None:
    p = new(steps=["vm.restart"])
    failures = {"left": 1}

    def storage_hiccup() -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("table service unavailable")

    p.switches.on_read = storage_hiccup
    p.send_alert(alert())
    p.drain()
    run = p.run()
    assert run.state is RunState.SUCCEEDED
    assert "claim_given_back" in p.events()
    assert p.arm.resource.executed == [("vm.restart", "agent")]


def test_a_throttled_write_is_not_sent_again_once_the_switch_is_thrown() -> None:
    p = new(steps=["vm.restart"])
    p.arm.throttled = 1
    reads = {"n": 0}

    def thrown_while_throttled() -> None:
        reads["n"] += 1
        if reads["n"] == 1:  # after the read before the call: another host throws it while ARM throttles
            p.switches._switch = replace(p.switches._switch, engaged=True, reason="bad deploy", by=OLGA_ACTOR,
                                         at=p.clock.now())

    p.switches.on_read = thrown_while_throttled
    p.send_alert(alert())
    p.drain()
    p.switches.on_read = None
    run = p.run()
    assert run.state is RunState.PAUSED
    assert run.steps[0].state is StepState.PENDING
    assert p.arm.throttles == ["vm.restart"]
    assert p.arm.resource.executed == []
    lift(p)
    p.drain()
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vm.restart", "agent")]


def test_a_resolved_alert_cancels_a_run_paused_before_consent_and_lifting_then_does_nothing() -> None:
    p = new(mode="review", steps=["vm.restart"])
    throw(p)
    p.send_alert(alert())
    p.drain()
    assert p.run().state is RunState.PAUSED
    p.send_alert(alert(condition="Resolved"), message_id="resolved-1")
    p.drain()
    assert p.run().state is RunState.CANCELLED
    assert p.run().pause is None
    lift(p)
    p.drain()
    assert p.run().state is RunState.CANCELLED
    assert p.arm.calls == []
    assert p.store.paused_runs() == []
