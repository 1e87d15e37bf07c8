"""The shadow report (what shadow runs would have done over a period, from the run index alone) and the
replay of a period's alerts through the plan stage in shadow mode, in its own correlation namespace."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from dataclasses import replace
from typing import Any

import azure.functions as func
import pytest

from gates import shadow
from gates.plan import REPLAY_PROPERTY
from shared.core.links import timed_form_token
from shared.core.model import OutboundMessage, RunState
from shared.topology import Queue
from tests.pipeline import ALICE, LINK_KEY, MALLORY, SUB, Pipeline, User, alert, principal_headers

READ = "Microsoft.Compute/virtualMachines/read"
RESTART = "Microsoft.Compute/virtualMachines/restart/action"
READER = User("4ead0000-0000-4000-8000-000000000004", "rita@contoso.test", ("Gates.Reader",))
ADMIN = User("ad000000-0000-4000-8000-000000000005", "ada@contoso.test", ("Gates.Admin", "Gates.Reader"))
START = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)


def vm(n: int) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rg-prod-web/providers/Microsoft.Compute/virtualMachines/vm-{n:02d}"


def book(*, shadow_plans: bool = True, deny_in: str = "") -> str:
    def plan(name: str, rule: str, mode: str) -> dict[str, Any]:
        return {"name": name, "mode": mode, "runbook": "restart", "shadow": shadow_plans,
                "filters": {"alertRules": [rule], "resourceTypes": ["Microsoft.Compute/virtualMachines"]},
                "scope": {"subscriptions": [SUB]}, "approvers": [ALICE.upn],
                **({"rules": [{"name": "no-restarts", "effect": "deny", "actions": ["vm.restart"]}]}
                   if deny_in == name else {})}

    return json.dumps({"version": 4, "runbooks": {"restart": {"steps": [{"action": "vm.restart"}]}},
                       "plans": [plan("restart-web", "vm-not-responding", "autonomous"),
                                 plan("restart-reviewed", "vm-slow", "review")]})


def pipeline(plans: str, agent_can: set[str] | None = None) -> Pipeline:
    return Pipeline(plans, agent_can=agent_can if agent_can is not None else {READ, RESTART})


def storm(p: Pipeline, rule: str, vms: int, each: int) -> None:
    """`each` firings of `rule` on each of `vms` VMs, a minute apart (within the cooldown)."""
    for i in range(each):
        for n in range(vms):
            p.send_alert(alert(rule, vm(n), alert_id=f"{rule}-{n}-{i}", fired=p.clock.now().isoformat()),
                         message_id=f"{rule}-{n}-{i}")
        p.drain()
        p.clock.advance(dt.timedelta(minutes=1))


def get(p: Pipeline, params: dict[str, str], user: User | None = ADMIN, accept: str = "application/json"
        ) -> func.HttpResponse:
    headers = {**(principal_headers(user) if user else {}), "Accept": accept}
    return p.http("GET", "shadow-report", "https://gates.example/api/shadow-report", headers=headers, params=params)


def report(p: Pipeline, **params: str) -> dict[str, Any]:
    response = get(p, {"since": (START - dt.timedelta(hours=1)).isoformat(),
                       "until": (p.clock.now() + dt.timedelta(hours=1)).isoformat(), **params})
    assert response.status_code == 200, response.get_body()
    document: dict[str, Any] = json.loads(response.get_body())
    return document


def scope(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in document["scopes"] if s["scope"] == name)


# ------------------------------------------------------------------------------------------ the report


def test_the_report_counts_one_shadow_run_per_resource_and_suggests_leaving_shadow_mode() -> None:
    p = pipeline(book())
    storm(p, "vm-not-responding", vms=4, each=3)
    document = report(p)
    web = scope(document, "plan restart-web")
    assert (web["shadow_runs"], web["resources"]) == (4, 4)
    assert web["would"] == {"denied": 0, "asked": 0, "autonomous": 4, "reads": 0}
    assert web["credentials"] == {"needed": 0, "not_needed": 4, "unknown": 0}
    assert web["decided_by"] == [{"would": "autonomous", "decided_by": "plan restart-web's autonomous mode",
                                  "runs": 4}]
    assert web["suggestion"].startswith("candidate to leave shadow mode")


def test_the_report_says_which_rule_would_have_denied_and_who_would_have_been_asked() -> None:
    p = pipeline(book(deny_in="restart-web"), agent_can={READ})
    storm(p, "vm-not-responding", vms=2, each=1)
    storm(p, "vm-slow", vms=3, each=1)
    document = report(p)
    assert document["would"] == {"denied": 2, "asked": 3, "autonomous": 0, "reads": 0}
    denied = scope(document, "plan restart-web")
    assert denied["decided_by"] == [{"would": "denied", "decided_by": "rule no-restarts (plan restart-web)",
                                     "runs": 2}]
    reviewed = scope(document, "plan restart-reviewed")
    assert reviewed["credentials"]["needed"] == 3  # the agent could not restart: credentials would be asked
    assert reviewed["suggestion"] == ""


def test_the_report_reads_only_the_index_not_the_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    p = pipeline(book())
    storm(p, "vm-not-responding", vms=3, each=1)

    def no_reads(run_id: str) -> None:
        raise AssertionError("the report loaded a run")

    monkeypatch.setattr(p.store, "get_run", no_reads)
    monkeypatch.setattr(p.store, "list_audit", no_reads)
    assert report(p)["shadow_runs"] == 3


def test_the_report_leaves_out_runs_outside_the_period() -> None:
    p = pipeline(book())
    storm(p, "vm-not-responding", vms=2, each=1)
    p.clock.advance(dt.timedelta(hours=5))
    storm(p, "vm-not-responding", vms=2, each=1)  # past the cooldown: new runs
    since = (p.clock.now() - dt.timedelta(minutes=30)).isoformat()
    response = get(p, {"since": since})
    assert json.loads(response.get_body())["shadow_runs"] == 2


@pytest.mark.parametrize(("params", "said"), [
    ({"since": "2026-10-01T00:00:00Z", "until": "2026-11-24T00:00:00Z"}, "at most 31 days"),
    ({"since": "yesterday"}, "ISO 8601"),
    ({"since": "2026-11-24T00:00:00Z", "until": "2026-11-23T00:00:00Z"}, "until must be after since"),
])
def test_a_period_the_report_cannot_answer_is_refused_with_a_reason(params: dict[str, str], said: str) -> None:
    response = get(pipeline(book()), params)
    assert response.status_code == 400
    assert said in json.loads(response.get_body())["message"]


def test_a_period_holding_more_runs_than_a_report_reads_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    p = pipeline(book())
    storm(p, "vm-not-responding", vms=4, each=1)
    monkeypatch.setattr(shadow, "MAX_RUNS", 3)
    monkeypatch.setattr(shadow, "PAGE", 2)
    response = get(p, {"since": START.isoformat()})
    assert response.status_code == 400
    assert "more than 3 runs" in json.loads(response.get_body())["message"]


@pytest.mark.parametrize(("user", "status"), [(None, 401), (MALLORY, 403), (READER, 200), (ALICE, 200)])
def test_the_report_is_for_those_who_may_read_the_run_list(user: User | None, status: int) -> None:
    assert get(pipeline(book()), {}, user=user).status_code == status


def test_the_report_page_shows_the_figures_and_offers_an_admin_the_replay() -> None:
    p = pipeline(book())
    storm(p, "vm-not-responding", vms=2, each=2)
    for user, offered in ((ADMIN, True), (READER, False)):
        response = get(p, {"since": START.isoformat(), "format": "html"}, user=user)
        page = response.get_body().decode()
        assert response.mimetype == "text/html"
        assert "plan restart-web" in page
        assert "would act autonomously: 2" in page
        assert "Candidate to leave shadow mode" in page
        assert ('action="/api/shadow/replay"' in page) is offered


# ------------------------------------------------------------------------------------------ the replay


def post_replay(p: Pipeline, body: dict[str, Any], user: User | None = ADMIN, *, api: bool = True
                ) -> func.HttpResponse:
    headers = {**(principal_headers(user) if user else {}), "Content-Type": "application/json"}
    if api:
        headers["Authorization"] = "Bearer an-api-callers-token"
    return p.http("POST", "shadow/replay", "https://gates.example/api/shadow/replay", headers=headers,
                  body=json.dumps(body).encode())


def real_incidents() -> Pipeline:
    """Real runs (no shadow): an autonomous restart that succeeded and a reviewed one awaiting consent."""
    p = pipeline(book(shadow_plans=False))
    storm(p, "vm-not-responding", vms=2, each=2)
    storm(p, "vm-slow", vms=1, each=1)
    return p


def period() -> dict[str, str]:
    return {"since": (START - dt.timedelta(hours=1)).isoformat(), "until": (START + dt.timedelta(hours=1)).isoformat()}


def test_a_replay_runs_the_periods_alerts_again_in_shadow_mode_without_touching_the_real_runs() -> None:
    p = real_incidents()
    before = {r.run_id: (r.state, r.etag) for r in p.store.all_runs()}
    statuses = dict(p.alert_status.rows)
    restarts = len(p.arm.calls)
    response = post_replay(p, period())
    assert response.status_code == 202
    answer = json.loads(response.get_body())
    # One per real run: each autonomous restart ended before the VM's next firing, which started another.
    assert answer["alerts_sent"] == len(before) == 5
    p.drain()
    runs = p.store.all_runs()
    replayed = [r for r in runs if r.run_id not in before]
    assert len(replayed) == 3  # in shadow, a VM's repeats within the cooldown join its one shadow run
    assert {r.state for r in replayed} == {RunState.SHADOWED}
    assert {r.guardrails["shadow_by"] for r in replayed if r.guardrails} == {f"replay {answer['replay_id']}"}
    assert {r.run_id: (r.state, r.etag) for r in runs if r.run_id in before} == before
    assert p.alert_status.rows == statuses
    assert len(p.arm.calls) == restarts
    figures = json.loads(get(p, dict(urllib.parse.parse_qsl(answer["report_url"].split("?", 1)[1]))).get_body())
    assert figures["replay"] == answer["replay_id"]
    assert figures["would"] == {"denied": 0, "asked": 1, "autonomous": 2, "reads": 0}
    assert report(p)["shadow_runs"] == 0  # the report of real shadow traffic leaves replays out


def test_a_replay_asks_no_one() -> None:
    p = real_incidents()
    mails = len(p.notifier.sent)
    post_replay(p, period())
    p.drain()
    assert len(p.notifier.sent) == mails


def test_a_replay_asked_again_makes_no_run_twice() -> None:
    p = real_incidents()
    first = json.loads(post_replay(p, period()).get_body())
    p.drain()
    count = len(p.store.all_runs())
    p.clock.advance(dt.timedelta(hours=1))  # past the queue's duplicate detection window
    second = json.loads(post_replay(p, period()).get_body())
    p.drain()
    assert second["replay_id"] == first["replay_id"]
    assert len(p.store.all_runs()) == count


def test_a_replay_groups_firings_by_when_they_fired_not_when_replayed() -> None:
    p = pipeline(book(shadow_plans=False))
    storm(p, "vm-slow", vms=1, each=1)
    p.clock.advance(dt.timedelta(hours=4))  # past the cooldown: the second firing made a run of its own
    storm(p, "vm-slow", vms=1, each=1)
    real = len(p.store.all_runs())
    assert real == 2
    response = post_replay(p, {"since": START.isoformat(), "until": p.clock.now().isoformat()})
    p.drain()
    assert json.loads(response.get_body())["alerts_sent"] == 2
    assert len(p.store.all_runs()) == real + 2


def test_a_real_alert_after_a_replay_still_joins_its_real_run() -> None:
    p = pipeline(book(shadow_plans=False))
    p.send_alert(alert("vm-slow", vm(0), alert_id="slow-0"), message_id="slow-0")
    p.drain()
    [real] = p.store.all_runs()
    post_replay(p, period())
    p.drain()
    p.clock.advance(dt.timedelta(minutes=5))
    p.send_alert(alert("vm-slow", vm(0), alert_id="slow-1", fired=p.clock.now().isoformat()), message_id="slow-1")
    p.drain()
    assert "alert_joined" in [e.event for e in p.store.list_audit(real.run_id)]
    assert len(p.store.all_runs()) == 2  # the real run and the replay's


def test_a_replay_can_be_limited_to_named_plans() -> None:
    p = real_incidents()
    response = post_replay(p, {**period(), "plans": ["restart-reviewed"]})
    assert json.loads(response.get_body())["alerts_sent"] == 1
    assert post_replay(p, {**period(), "plans": ["no-such-plan"]}).status_code == 400


@pytest.mark.parametrize(("user", "status"), [(None, 401), (READER, 403), (ALICE, 403)])
def test_only_an_admin_may_replay(user: User | None, status: int) -> None:
    p = real_incidents()
    sent = len(p.bus.sent)
    assert post_replay(p, period(), user=user).status_code == status
    assert len(p.bus.sent) == sent


def test_a_browser_replay_needs_the_form_token_the_report_page_showed() -> None:
    p = real_incidents()
    assert post_replay(p, period(), api=False).status_code == 403
    token = timed_form_token(LINK_KEY, ADMIN.object_id, shadow.REPLAY_FORM, p.clock.now())
    form = urllib.parse.urlencode({**period(), "form_token": token}).encode()
    response = p.http("POST", "shadow/replay", "https://gates.example/api/shadow/replay",
                      headers={**principal_headers(ADMIN), "Content-Type": "application/x-www-form-urlencoded"},
                      body=form)
    assert response.status_code == 202


def test_a_replay_of_too_long_a_period_is_refused() -> None:
    response = post_replay(real_incidents(), {"since": "2026-09-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"})
    assert response.status_code == 400
    assert "31 days" in json.loads(response.get_body())["message"]


def test_a_message_marked_with_a_replay_id_this_app_never_issued_is_set_aside() -> None:
    p = pipeline(book(shadow_plans=False))
    p.bus.send([OutboundMessage(Queue.ALERTS.value, "forged", alert(), "forged",
                                properties={REPLAY_PROPERTY: "../not-an-id"})])
    p.drain()
    assert p.store.all_runs() == []
    assert [r["message_id"] for r in p.rejected.items] == ["forged"]


def test_a_replay_marker_rides_as_an_application_property_on_service_bus() -> None:
    from shared.adapters.servicebus_bus import to_servicebus_message

    message = to_servicebus_message(OutboundMessage(Queue.ALERTS.value, "m", alert(), "c",
                                                    properties={REPLAY_PROPERTY: "0123456789abcdef"}))
    assert message.application_properties == {"run_id": "c", REPLAY_PROPERTY: "0123456789abcdef"}


def test_a_plain_alert_body_is_decided_as_before_even_with_shadow_off() -> None:
    p = pipeline(book(shadow_plans=False))
    p.services.policy = replace(p.services.policy, shadow=False)
    p.send_alert(alert())
    p.drain()
    assert p.run().state is RunState.SUCCEEDED


def test_an_agents_plans_shadow_runs_are_reported_under_their_agents_policy() -> None:
    from gates.shadow_report import shadow_report
    from shared.ports import RunSummary

    def summary(run_id: str, effect: str) -> RunSummary:
        return RunSummary(run_id, RunState.SHADOWED, "agent-review", vm(0), "agent:agent-review", "", START, START,
                          effect=effect, decided_by="agents policy agent-review's review mode", writes=True,
                          credentials="unknown")

    built = shadow_report([summary("a", "ask"), summary("b", "ask"), summary("a", "ask")], START,
                          START + dt.timedelta(hours=1)).as_record()
    [policy] = built["scopes"]
    assert policy["scope"] == "agents policy agent-review"
    assert policy["shadow_runs"] == 2  # a run indexed twice counts once
    assert policy["credentials"] == {"needed": 0, "not_needed": 0, "unknown": 2}
