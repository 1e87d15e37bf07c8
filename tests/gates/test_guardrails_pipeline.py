"""The guardrails through the whole pipeline (fakes for Azure): a denied action never reaches ARM, an
asked one waits for consent, an allowed one runs; limits fall back to consent; freezes; shadow mode."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Any

from shared.core.model import RequestKind, RunState
from shared.core.plans import parse_plan_book
from tests.agents import agent_pipeline, agents_book, post_plan
from tests.agents import plan as proposal
from tests.pipeline import ALICE, BOB, CATALOG, MALLORY, SUB, Pipeline, alert, principal_headers

WORKERS = f"/subscriptions/{SUB}/resourceGroups/rg-prod-workers/providers/Microsoft.Compute/virtualMachineScaleSets/"
SCALE = "Microsoft.Compute/virtualMachineScaleSets/write"
READ = "Microsoft.Compute/virtualMachineScaleSets/read"


def book(capacity: int, *, guardrails: dict[str, Any] | None = None, plan: dict[str, Any] | None = None,
         mode: str = "autonomous") -> str:
    return json.dumps({
        "version": 3,
        "runbooks": {"scale": {"steps": [{"action": "vmss.read"},
                                         {"action": "vmss.set_capacity", "parameters": {"capacity": capacity}}]}},
        "plans": [{"name": "backlog", "mode": mode, "runbook": "scale", "approvers": [ALICE.upn, BOB.upn],
                   "notify": ["oncall@contoso.test"],
                   "filters": {"alertRules": ["backlog"],
                               "resourceTypes": ["Microsoft.Compute/virtualMachineScaleSets"]},
                   "scope": {"subscriptions": [SUB]}, **(plan or {})}],
        "guardrails": guardrails or {},
    })


CAPS = {"rules": [
    {"name": "never-above-20", "effect": "deny", "actions": ["vmss.set_capacity"],
     "parameters": {"capacity": {"gt": 20}}, "reason": "the subscription's core quota"},
    {"name": "ask-above-8", "effect": "ask", "actions": ["vmss.set_capacity"], "parameters": {"capacity": {"gt": 8}}},
]}


def fire(p: Pipeline, resource: str = "workers", alert_id: str = "a1", fired: str = "2026-11-24T02:58:00Z") -> None:
    p.send_alert(alert("backlog", WORKERS + resource, alert_id=alert_id, fired=fired), message_id=f"m-{alert_id}")
    p.drain()


def test_a_denied_action_never_reaches_arm_and_the_run_names_the_rule() -> None:
    p = Pipeline(book(30, guardrails=CAPS), agent_can={SCALE, READ})
    fire(p)
    run = p.run()
    assert run.state is RunState.DENIED
    assert p.arm.calls == []
    assert "never-above-20" in run.outcome
    assert "the subscription's core quota" in run.outcome
    assert run.guardrails is not None
    assert run.guardrails["decided_by"] == "rule never-above-20 (global)"


def test_a_denied_run_tells_the_plans_notify_list() -> None:
    p = Pipeline(book(30, guardrails=CAPS), agent_can={SCALE, READ})
    fire(p)
    assert any("oncall@contoso.test" in mail["to"] for mail in p.notifier.sent)


def test_an_asked_action_waits_for_consent_then_runs_once() -> None:
    p = Pipeline(book(12, guardrails=CAPS), agent_can={SCALE, READ})
    fire(p)
    assert p.run().state is RunState.AWAITING_CONSENT
    assert p.arm.calls == []
    assert "ask-above-8" in p.run().guardrails["decided_by"]
    p.decide(RequestKind.CONSENT, "approve")
    p.drain()
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vmss.set_capacity", "agent")]


def test_an_allowed_action_runs_autonomously() -> None:
    p = Pipeline(book(4, guardrails=CAPS), agent_can={SCALE, READ})
    fire(p)
    run = p.run()
    assert run.state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vmss.set_capacity", "agent")]
    assert "consent_implicit" in p.events()


def test_a_plans_own_rule_narrows_the_app_but_its_allow_never_widens_an_app_ask() -> None:
    plan_rules = {"rules": [{"name": "fine-by-us", "effect": "allow", "actions": ["vmss.set_capacity"]}]}
    p = Pipeline(book(12, guardrails=CAPS, plan=plan_rules), agent_can={SCALE, READ})
    fire(p)
    assert p.run().state is RunState.AWAITING_CONSENT


def test_a_review_plans_own_allow_rule_runs_that_action_autonomously() -> None:
    plan_rules = {"rules": [{"name": "small-scale-ok", "effect": "allow", "actions": ["vmss.set_capacity"],
                             "parameters": {"capacity": {"le": 6}}}]}
    p = Pipeline(book(4, plan=plan_rules, mode="review"), agent_can={SCALE, READ})
    fire(p)
    assert p.run().state is RunState.SUCCEEDED
    assert p.run().mode.value == "autonomous"


def test_a_freeze_falls_back_to_consent_saying_why() -> None:
    freeze = {"freezes": [{"name": "black-friday", "start": "2026-11-01T00:00:00Z", "end": "2027-01-01T00:00:00Z",
                           "reason": "peak trading"}]}
    p = Pipeline(book(4, guardrails=freeze), agent_can={SCALE, READ})
    fire(p)
    run = p.run()
    assert run.state is RunState.AWAITING_CONSENT
    assert "black-friday" in run.guardrails["reason"]
    assert "autonomy_capped" in p.events()


def test_runs_over_a_resource_limit_ask_consent_naming_the_limit() -> None:
    limits = {"limits": {"resourcesPerRulePerHour": 2}}
    p = Pipeline(book(4, guardrails=limits), agent_can={SCALE, READ})
    for i, name in enumerate(["w1", "w2", "w3"]):
        fire(p, name, alert_id=f"a{i}")
    states = {r.resource_id.rsplit("/", 1)[-1]: r for r in p.store.all_runs()}
    assert [states[n].state for n in ("w1", "w2", "w3")] == [
        RunState.SUCCEEDED, RunState.SUCCEEDED, RunState.AWAITING_CONSENT]
    assert "at most 2 resources per alert rule per hour" in states["w3"].guardrails["limit"]
    assert len(p.arm.resource.executed) == 2


def test_a_redelivered_alert_takes_no_second_place_under_a_limit() -> None:
    limits = {"limits": {"resourcesPerRulePerHour": 1}}
    p = Pipeline(book(4, guardrails=limits), agent_can={SCALE, READ})
    fire(p, "w1")
    p.send_alert(alert("backlog", WORKERS + "w1", alert_id="a1"), message_id="m-a1")
    p.drain()
    assert [r.state for r in p.store.all_runs()] == [RunState.SUCCEEDED]


def test_a_rule_on_tags_reads_the_targets_tags_from_arm() -> None:
    guard = {"rules": [{"name": "prod-asks", "effect": "ask", "tags": {"env": "prod"}}]}
    p = Pipeline(book(4, guardrails=guard), agent_can={SCALE, READ})
    p.arm.document = {"tags": {"env": "prod"}, "sku": {"capacity": 2}}
    fire(p)
    assert p.run().state is RunState.AWAITING_CONSENT
    assert p.arm.calls[0] == ("vmss.read", "agent")


def test_tags_the_agent_cannot_read_make_a_tag_rule_restrict() -> None:
    guard = {"rules": [{"name": "prod-asks", "effect": "ask", "tags": {"env": "prod"}}]}
    p = Pipeline(book(4, guardrails=guard), agent_can={SCALE})
    fire(p)
    assert p.run().state is RunState.AWAITING_CONSENT


def test_shadow_mode_acts_on_nothing_prompts_no_one_and_records_the_decision() -> None:
    p = Pipeline(book(12, guardrails={**CAPS, "shadow": True}), agent_can={READ})
    fire(p)
    run = p.run()
    assert run.state is RunState.SHADOWED
    assert p.arm.calls == []
    assert p.notifier.sent == []
    assert "would have asked consent of alice@contoso.test, bob@contoso.test" in run.outcome
    assert "temporary credentials would be asked for step(s) 2" in run.outcome
    assert "shadow_decided" in p.events()


def test_a_storm_in_shadow_mode_is_one_run_per_resource() -> None:
    p = Pipeline(book(4, guardrails={"shadow": True}), agent_can={SCALE, READ})
    for i in range(30):
        p.send_alert(alert("backlog", WORKERS + f"w{i % 3}", alert_id=f"a{i}"), message_id=f"m{i}")
    p.drain()
    assert sorted(r.state.value for r in p.store.all_runs()) == ["shadowed"] * 3
    assert p.arm.resource.executed == []
    assert p.notifier.sent == []


# ---- plans brought by agents: the same guardrails, with the calling agent as a fact ----------------------

def agents_with(guardrails: dict[str, Any], mode: str = "autonomous", **entry: Any) -> Pipeline:
    document = json.loads(agents_book(mode))
    document["guardrails"] = guardrails
    document["agents"][0].update(entry)
    p = agent_pipeline(mode, agent_can={SCALE, READ})
    p.services.policy = replace(p.services.policy,
                                 plans=parse_plan_book(json.dumps(document), "plans.json", CATALOG))
    return p


AGENT_CAP = {"rules": [{"name": "agents-small", "effect": "deny", "agents": ["sre-agent"],
                        "actions": ["vmss.set_capacity"], "parameters": {"capacity": {"gt": 6}}}]}


def test_an_agents_plan_a_rule_denies_is_refused_naming_the_rule_and_creates_nothing() -> None:
    p = agents_with(AGENT_CAP)
    status, body = post_plan(p, proposal(capacity=10))
    assert status == 403
    assert "denied by rule agents-small" in body["message"]
    assert body["field"] == "steps[1].action"
    assert p.store.all_runs() == []
    assert p.arm.calls == []


def test_check_plan_answers_the_guardrails_question_without_creating_a_run() -> None:
    p = agents_with(AGENT_CAP)
    status, body = post_plan(p, proposal(capacity=10), route="plans/check")
    assert (status, body["decision"]) == (200, "refuse")
    assert body["guardrails"]["decided_by"] == "rule agents-small (global)"
    status, body = post_plan(p, proposal(capacity=4), route="plans/check")
    assert (status, body["decision"]) == (200, "allow")
    assert body["guardrails"]["steps"][1]["decided_by"] == "agents policy sre-agent's autonomous mode"
    assert p.store.all_runs() == []


def test_an_agents_policy_entry_can_ask_where_its_mode_would_act() -> None:
    p = agents_with({}, rules=[{"name": "ask-scale", "effect": "ask", "actions": ["vmss.set_capacity"]}])
    status, body = post_plan(p, proposal(capacity=4))
    assert (status, body["decision"]) == (202, "consent")
    assert p.run().state is RunState.AWAITING_CONSENT


def test_an_agents_plan_in_shadow_mode_is_recorded_and_nothing_acts() -> None:
    p = agents_with({"shadow": True})
    status, body = post_plan(p, proposal(capacity=4))
    p.drain()
    assert (status, body["decision"]) == (202, "shadow")
    assert p.run().state is RunState.SHADOWED
    assert p.arm.calls == []
    assert p.notifier.sent == []


# ---- the dry evaluation of an alert: the same question, nothing created -----------------------------------

def evaluate(p: Pipeline, document: Any, user: Any = ALICE) -> tuple[int, dict[str, Any]]:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    headers = {**principal_headers(user), "Accept": "application/json"} if user is not None else {}
    response = p.http("POST", "guardrails/evaluate", "https://gates.example/api/guardrails/evaluate",
                      headers=headers, body=body)
    return response.status_code, json.loads(response.get_body())


def test_evaluating_an_alert_says_which_rule_decides_and_creates_nothing() -> None:
    p = Pipeline(book(30, guardrails=CAPS), agent_can={SCALE, READ})
    status, body = evaluate(p, alert("backlog", WORKERS + "workers"))
    assert status == 200
    (target,) = body["targets"]
    assert target["plan"] == "backlog"
    assert target["guardrails"]["effect"] == "deny"
    assert target["guardrails"]["decided_by"] == "rule never-above-20 (global)"
    assert p.store.all_runs() == []
    assert p.arm.calls == []
    assert p.limits.writes == 0


def test_evaluating_an_alert_no_plan_matches_says_so() -> None:
    p = Pipeline(book(4))
    _, body = evaluate(p, alert("some-other-rule", WORKERS + "workers"))
    assert body["targets"][0]["plan"] is None


def test_evaluation_needs_a_signed_in_reader_and_a_readable_alert() -> None:
    p = Pipeline(book(4))
    assert evaluate(p, alert("backlog", WORKERS + "w"), user=None)[0] == 401
    assert evaluate(p, alert("backlog", WORKERS + "w"), user=MALLORY)[0] == 403
    status, body = evaluate(p, b"{not json")
    assert status == 400
    assert body["message"]


def test_the_consent_mail_and_page_say_which_limit_asks_a_person() -> None:
    p = Pipeline(book(4, guardrails={"limits": {"resourcesPerRulePerHour": 1}}), agent_can={SCALE, READ})
    fire(p, "w1", alert_id="a1")
    fire(p, "w2", alert_id="a2")
    mail = next(m for m in p.notifier.sent if "Consent needed" in m["subject"])
    assert "Asked because: at most 1 resource per alert rule per hour is met" in mail["text"]
    asked = next(r for r in p.store.all_runs() if r.state is RunState.AWAITING_CONSENT)
    request = asked.requests[0]
    page = p.http("GET", "runs/{run_id}/requests/{request_id}",
                  f"https://gates.example/api/runs/{asked.run_id}/requests/{request.request_id}",
                  headers=principal_headers(ALICE),
                  route_params={"run_id": asked.run_id, "request_id": request.request_id}).get_body().decode()
    assert "at most 1 resource per alert rule per hour is met" in page


def test_the_consent_mail_names_the_rule_that_asks() -> None:
    p = Pipeline(book(12, guardrails=CAPS), agent_can={SCALE, READ})
    fire(p)
    mail = next(m for m in p.notifier.sent if "Consent needed" in m["subject"])
    assert "Asked because: step 2 (vmss.set_capacity): consent is asked by rule ask-above-8" in mail["text"]


def test_a_firing_after_shadow_mode_is_turned_off_is_decided_for_real() -> None:
    p = Pipeline(book(4), agent_can={SCALE, READ})
    p.services.policy = replace(p.services.policy, shadow=True)
    fire(p, alert_id="a1")
    p.services.policy = replace(p.services.policy, shadow=False)
    p.clock.advance(dt.timedelta(minutes=10))
    fire(p, alert_id="a2", fired="2026-11-24T03:08:00Z")
    assert sorted(r.state.value for r in p.store.all_runs()) == ["shadowed", "succeeded"]
    assert p.arm.resource.executed == [("vmss.set_capacity", "agent")]


def test_repeat_firings_of_a_denied_plan_join_its_one_denied_run_and_mail_once() -> None:
    p = Pipeline(book(30, guardrails=CAPS), agent_can={SCALE, READ})
    for i in range(5):
        fire(p, alert_id=f"a{i}", fired=f"2026-11-24T03:0{i}:00Z")
    assert [r.state for r in p.store.all_runs()] == [RunState.DENIED]
    assert len([m for m in p.notifier.sent if "oncall@contoso.test" in m["to"]]) == 1
    assert p.events().count("alert_joined") == 4


def test_a_run_a_person_denied_does_not_absorb_the_next_firing() -> None:
    p = Pipeline(book(12, guardrails=CAPS), agent_can={SCALE, READ})
    fire(p, alert_id="a1")
    p.decide(RequestKind.CONSENT, "deny")
    p.drain()
    fire(p, alert_id="a2", fired="2026-11-24T03:08:00Z")
    assert sorted(r.state.value for r in p.store.all_runs()) == ["awaiting_consent", "denied"]


def test_shadow_mode_reports_the_limits_real_runs_would_have_met_without_touching_the_real_counters() -> None:
    p = Pipeline(book(4, guardrails={"shadow": True, "limits": {"resourcesPerRulePerHour": 2}}),
                 agent_can={SCALE, READ})
    for i, name in enumerate(["w1", "w2", "w3"]):
        fire(p, name, alert_id=f"a{i}")
    effects = sorted((r.resource_id.rsplit("/", 1)[-1], r.guardrails["effect"], r.guardrails["limit"])
                     for r in p.store.all_runs())
    assert effects == [("w1", "allow", ""), ("w2", "allow", ""),
                       ("w3", "ask", "at most 2 resources per alert rule per hour")]
    assert all(r.state is RunState.SHADOWED for r in p.store.all_runs())
    assert all(key.startswith("shadow|") for key in p.limits.counters)
