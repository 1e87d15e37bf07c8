"""The guardrails' order of evaluation, stated as tables: deny over allow, the ceiling over the plan, a
narrow scope narrowing (never widening) a wide one, parameter bounds, unknown facts, freezes, shadow."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from shared.core.errors import ConfigError
from shared.core.guardrails import (
    Effect,
    Facts,
    Guardrails,
    ScopeRules,
    StepToDecide,
    decide,
    parse_guardrails,
    parse_scope_rules,
)
from shared.core.model import ActionKind, Mode
from shared.core.plans import parse_plan_book
from tests.agents import agents_book
from tests.pipeline import CATALOG

NOW = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.UTC)
VMSS = ("/subscriptions/2b5c3f6e-0000-4000-8000-0000000005b1/resourceGroups/rg-prod-workers/providers/"
        "Microsoft.Compute/virtualMachineScaleSets/workers")
READ = StepToDecide("vmss.read", ActionKind.READ)
AGENTS = frozenset({"sre-agent"})


def scale(capacity: Any) -> StepToDecide:
    return StepToDecide("vmss.set_capacity", ActionKind.WRITE, {"capacity": capacity} if capacity is not None else {})


def app(*rules: dict[str, Any], **more: Any) -> Guardrails:
    return parse_guardrails({"rules": list(rules), **more}, "plans.json", CATALOG, AGENTS)


def plan(*rules: dict[str, Any], **more: Any) -> ScopeRules:
    return parse_scope_rules({"rules": list(rules), **more}, "plans[p]", "plan p", "plans.json", CATALOG, AGENTS)


def verdict(guardrails: Guardrails, scope: ScopeRules, mode: Mode, steps: list[StepToDecide],
            ceiling: Mode = Mode.AUTONOMOUS, facts: Facts | None = None, now: dt.datetime = NOW,
            app_shadow: bool = False):
    return decide(guardrails, scope, "plan p", mode, steps, facts or Facts(VMSS, severity="Sev2", alert_rule="r"),
                  ceiling, now, app_shadow=app_shadow)


DENY_ABOVE_20 = {"name": "cap-20", "effect": "deny", "actions": ["vmss.set_capacity"],
                 "parameters": {"capacity": {"gt": 20}}}
ASK_ABOVE_8 = {"name": "ask-8", "effect": "ask", "actions": ["vmss.set_capacity"],
               "parameters": {"capacity": {"gt": 8}}}
ALLOW_SCALE = {"name": "allow-scale", "effect": "allow", "actions": ["vmss.set_capacity"]}
DENY_SCALE = {"name": "no-scale", "effect": "deny", "actions": ["vmss.*"], "kinds": ["write"]}
ASK_SCALE = {"name": "ask-scale", "effect": "ask", "actions": ["vmss.set_capacity"]}


# Each row: app-wide rules, the plan's rules, the plan's mode, the ceiling, the capacity asked ->
# the effect and what decided it.
ORDER = [
    # a plan's mode decides when no rule matches
    ([], [], Mode.AUTONOMOUS, Mode.AUTONOMOUS, 4, Effect.ALLOW, "plan p's autonomous mode"),
    ([], [], Mode.REVIEW, Mode.AUTONOMOUS, 4, Effect.ASK, "plan p's review mode"),
    # parameter bounds: deny above 20, ask above 8, the mode below
    ([DENY_ABOVE_20, ASK_ABOVE_8], [], Mode.AUTONOMOUS, Mode.AUTONOMOUS, 4, Effect.ALLOW, "plan p's autonomous mode"),
    ([DENY_ABOVE_20, ASK_ABOVE_8], [], Mode.AUTONOMOUS, Mode.AUTONOMOUS, 9, Effect.ASK, "rule ask-8 (global)"),
    ([DENY_ABOVE_20, ASK_ABOVE_8], [], Mode.AUTONOMOUS, Mode.AUTONOMOUS, 20, Effect.ASK, "rule ask-8 (global)"),
    ([DENY_ABOVE_20, ASK_ABOVE_8], [], Mode.AUTONOMOUS, Mode.AUTONOMOUS, 21, Effect.DENY, "rule cap-20 (global)"),
    # deny over allow, in one scope and across scopes
    ([], [ALLOW_SCALE, DENY_SCALE], Mode.AUTONOMOUS, Mode.AUTONOMOUS, 4, Effect.DENY, "rule no-scale (plan p)"),
    ([DENY_SCALE], [ALLOW_SCALE], Mode.AUTONOMOUS, Mode.AUTONOMOUS, 4, Effect.DENY, "rule no-scale (global)"),
    ([ALLOW_SCALE], [DENY_SCALE], Mode.AUTONOMOUS, Mode.AUTONOMOUS, 4, Effect.DENY, "rule no-scale (plan p)"),
    # a narrow scope narrows a wide one ...
    ([], [ASK_SCALE], Mode.AUTONOMOUS, Mode.AUTONOMOUS, 4, Effect.ASK, "rule ask-scale (plan p)"),
    # ... and never widens it
    ([ASK_SCALE], [ALLOW_SCALE], Mode.AUTONOMOUS, Mode.AUTONOMOUS, 4, Effect.ASK, "rule ask-scale (global)"),
    # the app's allow never makes a review plan autonomous; the plan's own allow does (defined ahead of time)
    ([ALLOW_SCALE], [], Mode.REVIEW, Mode.AUTONOMOUS, 4, Effect.ASK, "plan p's review mode"),
    ([], [ALLOW_SCALE], Mode.REVIEW, Mode.AUTONOMOUS, 4, Effect.ALLOW, "rule allow-scale (plan p)"),
    # the ceiling over the plan (and over the plan's allow)
    ([], [], Mode.AUTONOMOUS, Mode.REVIEW, 4, Effect.ASK, "the global autonomy ceiling"),
    ([], [ALLOW_SCALE], Mode.REVIEW, Mode.REVIEW, 4, Effect.ASK, "the global autonomy ceiling"),
    # ... but a deny is still a deny under the ceiling
    ([DENY_ABOVE_20], [], Mode.AUTONOMOUS, Mode.REVIEW, 21, Effect.DENY, "rule cap-20 (global)"),
    # a read-only plan never writes, whatever a rule allows
    ([], [], Mode.READ_ONLY, Mode.AUTONOMOUS, 4, Effect.DENY, "plan p's read-only mode"),
]


@pytest.mark.parametrize(("wide", "narrow", "mode", "ceiling", "capacity", "effect", "decided_by"), ORDER)
def test_the_order_of_evaluation(wide, narrow, mode, ceiling, capacity, effect, decided_by) -> None:
    decided = verdict(app(*wide), plan(*narrow), mode, [READ, scale(capacity)], ceiling)
    assert (decided.effect, decided.decided_by) == (effect, decided_by)
    assert decided.steps[1].decided_by == decided_by


def test_a_read_is_allowed_in_every_mode_and_under_any_ceiling() -> None:
    for mode in Mode:
        decided = verdict(Guardrails(), ScopeRules(), mode, [READ], Mode.REVIEW)
        assert decided.effect is Effect.ALLOW
        assert decided.reason == "reads only: no consent is asked"


def test_a_rule_can_deny_a_read() -> None:
    rule = {"name": "no-reads-here", "effect": "deny", "actions": ["vmss.read"]}
    assert verdict(app(rule), ScopeRules(), Mode.AUTONOMOUS, [READ]).effect is Effect.DENY


def test_a_run_is_denied_when_any_step_is_and_names_that_step() -> None:
    decided = verdict(app(DENY_ABOVE_20), ScopeRules(), Mode.AUTONOMOUS, [READ, scale(30)])
    assert decided.effect is Effect.DENY
    assert decided.reason.startswith("step 2 (vmss.set_capacity): denied by rule cap-20")
    assert [s.effect for s in decided.steps] == [Effect.ALLOW, Effect.DENY]


@pytest.mark.parametrize(("match", "facts", "matches"), [
    ({"resourceGroups": ["rg-prod-workers"]}, Facts(VMSS), True),
    ({"resourceGroups": ["rg-other"]}, Facts(VMSS), False),
    ({"resourceTypes": ["Microsoft.Compute/virtualMachineScaleSets"]}, Facts(VMSS), True),
    ({"subscriptions": ["00000000-0000-4000-8000-000000000000"]}, Facts(VMSS), False),
    ({"severities": ["Sev0", "Sev1"]}, Facts(VMSS, severity="Sev1"), True),
    ({"severities": ["Sev0", "Sev1"]}, Facts(VMSS, severity="Sev3"), False),
    ({"alertRules": ["Worker-Queue-Backlog"]}, Facts(VMSS, alert_rule="worker-queue-backlog"), True),
    ({"agents": ["sre-agent"]}, Facts(VMSS, agent="sre-agent"), True),
    ({"agents": ["sre-agent"]}, Facts(VMSS), False),  # a rule on agents never matches an alert's run
    ({"tags": {"env": "prod"}}, Facts(VMSS, tags={"Env": "prod"}), True),
    ({"tags": {"env": "prod"}}, Facts(VMSS, tags={"env": "dev"}), False),
    ({"tags": {"env": "*"}}, Facts(VMSS, tags={"env": "dev"}), True),
    ({"tags": {"env": "*"}}, Facts(VMSS, tags={}), False),
])
def test_a_rule_matches_on_the_target_the_alert_and_the_agent(match, facts, matches) -> None:
    rule = {"name": "r", "effect": "ask", **match}
    decided = decide(app(rule), ScopeRules(), "plan p", Mode.AUTONOMOUS, [scale(4)], facts, Mode.AUTONOMOUS, NOW)
    assert (decided.effect is Effect.ASK) is matches


@pytest.mark.parametrize(("effect", "expected"), [("deny", Effect.DENY), ("ask", Effect.ASK)])
def test_unknown_tags_make_a_restricting_rule_match(effect, expected) -> None:
    rule = {"name": "prod", "effect": effect, "tags": {"env": "prod"}}
    decided = verdict(app(rule), ScopeRules(), Mode.AUTONOMOUS, [scale(4)], facts=Facts(VMSS, tags=None))
    assert decided.effect is expected


def test_unknown_tags_never_let_an_allow_rule_match() -> None:
    rule = {"name": "dev-free", "effect": "allow", "tags": {"env": "dev"}}
    decided = verdict(Guardrails(), plan(rule), Mode.REVIEW, [scale(4)], facts=Facts(VMSS, tags=None))
    assert decided.effect is Effect.ASK


@pytest.mark.parametrize(("capacity", "effect"), [(None, Effect.ASK), ("9", Effect.ASK), (True, Effect.ASK)])
def test_a_parameter_that_cannot_be_compared_makes_a_restricting_bound_match(capacity, effect) -> None:
    assert verdict(app(ASK_ABOVE_8), ScopeRules(), Mode.AUTONOMOUS, [scale(capacity)]).effect is effect


def test_a_parameter_that_cannot_be_compared_never_lets_an_allow_bound_match() -> None:
    rule = {"name": "small", "effect": "allow", "actions": ["vmss.set_capacity"], "parameters": {"capacity": {"le": 4}}}
    assert verdict(Guardrails(), plan(rule), Mode.REVIEW, [scale("3")]).effect is Effect.ASK


@pytest.mark.parametrize(("test", "value", "holds"), [
    ({"ge": 5}, 5, True), ({"ge": 5}, 4, False), ({"lt": 5}, 4, True), ({"le": 5}, 6, False),
    ({"eq": 4}, 4, True), ({"ne": 4}, 4, False), ({"in": [1, 2]}, 2, True), ({"notIn": [1, 2]}, 2, False),
    ({"gt": 2, "lt": 6}, 4, True), ({"gt": 2, "lt": 6}, 7, False),
])
def test_parameter_bounds(test, value, holds) -> None:
    rule = {"name": "b", "effect": "deny", "actions": ["vmss.set_capacity"], "parameters": {"capacity": test}}
    assert (verdict(app(rule), ScopeRules(), Mode.AUTONOMOUS, [scale(value)]).effect is Effect.DENY) is holds


FREEZE = {"name": "year-end", "start": "2026-12-01T00:00:00Z", "end": "2026-12-03T00:00:00Z", "reason": "close"}


def test_a_freeze_turns_an_allowed_write_into_an_ask_naming_it() -> None:
    decided = verdict(app(freezes=[FREEZE]), ScopeRules(), Mode.AUTONOMOUS, [READ, scale(4)])
    assert (decided.effect, decided.decided_by, decided.freeze) == (Effect.ASK, "freeze year-end", "year-end")
    assert "change freeze year-end" in decided.reason
    assert "close" in decided.reason


def test_a_freeze_outside_its_window_or_its_resource_groups_changes_nothing() -> None:
    later = verdict(app(freezes=[FREEZE]), ScopeRules(), Mode.AUTONOMOUS, [scale(4)], now=NOW + dt.timedelta(days=2))
    elsewhere = verdict(app(freezes=[{**FREEZE, "resourceGroups": ["rg-prod-web"]}]), ScopeRules(), Mode.AUTONOMOUS,
                        [scale(4)])
    assert later.effect is Effect.ALLOW
    assert elsewhere.effect is Effect.ALLOW


def test_a_freeze_never_loosens_a_deny_and_leaves_reads_alone() -> None:
    denied = verdict(app(DENY_ABOVE_20, freezes=[FREEZE]), ScopeRules(), Mode.AUTONOMOUS, [READ, scale(30)])
    assert denied.effect is Effect.DENY
    assert denied.steps[0].effect is Effect.ALLOW


@pytest.mark.parametrize(("wide", "narrow", "app_shadow", "by"), [
    (True, False, False, "the guardrails' shadow mode"),
    (False, True, False, "plan p's shadow mode"),
    (False, False, True, "the app's shadow setting"),
])
def test_shadow_mode_from_any_scope_is_recorded_with_what_set_it(wide, narrow, app_shadow, by) -> None:
    decided = verdict(app(shadow=wide), plan(shadow=narrow), Mode.AUTONOMOUS, [scale(4)], app_shadow=app_shadow)
    assert (decided.shadow, decided.shadow_by) == (True, by)
    assert decided.effect is Effect.ALLOW  # what it would have done is still decided


def test_limits_of_a_plan_narrow_the_apps() -> None:
    decided = verdict(app(limits={"writesPerResourcePerHour": 3, "runsInFlightPerResourceGroup": 5}),
                      plan(limits={"writesPerResourcePerHour": 5, "resourcesPerRulePerHour": 2}), Mode.AUTONOMOUS,
                      [scale(4)])
    assert (decided.limits.writes_per_resource_per_hour, decided.limits.resources_per_rule_per_hour,
            decided.limits.runs_in_flight_per_resource_group) == (3, 2, 5)


def test_a_verdict_asked_for_a_limit_names_it() -> None:
    decided = verdict(Guardrails(), ScopeRules(), Mode.AUTONOMOUS, [scale(4)]).asked_for(
        "at most 3 writes per resource per hour", "limit writes-per-resource")
    assert (decided.effect, decided.limit, decided.decided_by) == (
        Effect.ASK, "at most 3 writes per resource per hour", "limit writes-per-resource")
    assert decided.as_record()["limit"] == "at most 3 writes per resource per hour"


def test_the_record_names_every_steps_rule() -> None:
    record = verdict(app(ASK_ABOVE_8), ScopeRules(), Mode.AUTONOMOUS, [READ, scale(9)]).as_record()
    assert json.loads(json.dumps(record))["steps"] == [
        {"step": 0, "action": "vmss.read", "effect": "allow", "decided_by": "plan p's autonomous mode",
         "reason": "a read: no consent is asked"},
        {"step": 1, "action": "vmss.set_capacity", "effect": "ask", "decided_by": "rule ask-8 (global)",
         "reason": "consent is asked by rule ask-8"},
    ]


@pytest.mark.parametrize(("raw", "entry", "words"), [
    ({"rules": [{"name": "x", "effect": "maybe"}]}, "guardrails.rules[x].effect", "not allow, ask or deny"),
    ({"rules": [{"name": "x", "effect": "deny", "actions": ["vm.delete"]}]}, "guardrails.rules[x].actions",
     "names no action"),
    ({"rules": [{"name": "x", "effect": "deny", "parameters": {"capacity": {"gt": 1}}}]},
     "guardrails.rules[x].parameters", "must name its 'actions'"),
    ({"rules": [{"name": "x", "effect": "deny", "actions": ["vmss.set_capacity"], "parameters": {"size": {"gt": 1}}}]},
     "guardrails.rules[x].parameters.size", "is not a parameter"),
    ({"rules": [{"name": "x", "effect": "deny", "actions": ["vmss.set_capacity"],
                 "parameters": {"capacity": {"above": 1}}}]}, "guardrails.rules[x].parameters.capacity.above",
     "is not one of"),
    ({"rules": [{"name": "x", "effect": "deny", "actions": ["vmss.set_capacity"],
                 "parameters": {"capacity": {"gt": "20"}}}]}, "guardrails.rules[x].parameters.capacity.gt",
     "must be a number"),
    ({"rules": [{"name": "x", "effect": "deny", "agents": ["ghost"]}]}, "guardrails.rules[x].agents",
     "not named under 'agents'"),
    ({"rules": [{"name": "x", "effect": "deny", "colour": "red"}]}, "guardrails.rules[x]", "unknown settings"),
    ({"rules": [{"name": "x", "effect": "deny"}, {"name": "x", "effect": "ask"}]}, "guardrails.rules[1]", "twice"),
    ({"shadow": "yes"}, "guardrails.shadow", "true or false"),
    ({"freezes": [{"name": "f", "start": "2026-12-24", "end": "2026-12-26T00:00:00Z"}]}, "guardrails.freezes[f].start",
     "time zone"),
    ({"freezes": [{"name": "f", "start": "2026-12-26T00:00:00Z", "end": "2026-12-24T00:00:00Z"}]},
     "guardrails.freezes[f]", "ends before it starts"),
    ({"freezes": [{"name": "f", "start": "soon", "end": "2026-12-24T00:00:00Z"}]}, "guardrails.freezes[f].start",
     "date and time"),
    ({"brakes": True}, "guardrails", "unknown settings"),
])
def test_a_mistake_in_the_guardrails_stops_start_up_naming_the_entry(raw, entry, words) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_guardrails(raw, "plans.json", CATALOG, AGENTS)
    assert raised.value.entry == entry
    assert words in raised.value.problem


def test_a_rule_can_match_the_catalogs_risk_of_an_action() -> None:
    rule = {"name": "high-risk-asks", "effect": "ask", "risks": ["high"]}
    restart_all = StepToDecide.of(CATALOG, "vmss.restart", {})
    assert restart_all.risk == "high"
    assert verdict(app(rule), ScopeRules(), Mode.AUTONOMOUS, [restart_all]).effect is Effect.ASK
    assert verdict(app(rule), ScopeRules(), Mode.AUTONOMOUS, [StepToDecide.of(CATALOG, "vmss.set_capacity",
                                                                              {"capacity": 4})]).effect is Effect.ALLOW


def test_a_risk_the_catalog_never_uses_is_a_mistake() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_guardrails({"rules": [{"name": "x", "effect": "deny", "risks": ["extreme"]}]}, "p", CATALOG, AGENTS)
    assert raised.value.entry == "guardrails.rules[x].risks"


def test_an_alert_without_severity_is_caught_by_a_severity_scoped_deny() -> None:
    rule = {"name": "no-sev0-writes", "effect": "deny", "severities": ["Sev0"], "kinds": ["write"]}
    decided = verdict(app(rule), ScopeRules(), Mode.AUTONOMOUS, [scale(4)], facts=Facts(VMSS, severity=None))
    assert decided.effect is Effect.DENY


def test_a_severity_scoped_allow_never_matches_an_alert_without_severity() -> None:
    rule = {"name": "quiet-ok", "effect": "allow", "severities": ["Sev4"]}
    decided = verdict(Guardrails(), plan(rule), Mode.REVIEW, [scale(4)], facts=Facts(VMSS, severity=None))
    assert decided.effect is Effect.ASK


def test_a_rule_on_severities_or_alert_rules_does_not_apply_to_an_agents_plan() -> None:
    rule = {"name": "no-sev0-writes", "effect": "deny", "severities": ["Sev0"], "kinds": ["write"]}
    decided = verdict(app(rule), ScopeRules(), Mode.AUTONOMOUS, [scale(4)],
                      facts=Facts(VMSS, agent="sre-agent", from_alert=False))
    assert decided.effect is Effect.ALLOW


def test_a_parameter_test_does_not_apply_to_an_action_without_that_parameter() -> None:
    rule = {"name": "vmss-cap", "effect": "deny", "actions": ["vmss.*"], "parameters": {"capacity": {"gt": 20}}}
    read = StepToDecide.of(CATALOG, "vmss.read", {})
    restart_all = StepToDecide.of(CATALOG, "vmss.restart", {})
    decided = verdict(app(rule), ScopeRules(), Mode.AUTONOMOUS, [read, restart_all])
    assert decided.effect is Effect.ALLOW


def test_a_severity_the_alert_schema_never_sends_is_a_mistake() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_guardrails({"rules": [{"name": "x", "effect": "deny", "severities": ["sev0"]}]}, "p", CATALOG, AGENTS)
    assert raised.value.entry == "guardrails.rules[x].severities"


@pytest.mark.parametrize(("where", "key"), [("plans", "rule"), ("plans", "shadows"), ("agents", "limit")])
def test_a_misspelt_key_in_a_plan_or_agents_entry_stops_start_up(where: str, key: str) -> None:
    document = json.loads(agents_book())
    document[where][0][key] = []
    with pytest.raises(ConfigError) as raised:
        parse_plan_book(json.dumps(document), "plans.json", CATALOG)
    assert "unknown settings" in raised.value.problem
    assert key in raised.value.problem


def test_an_agents_policy_entry_may_name_agents_in_its_rules() -> None:
    document = json.loads(agents_book())
    document["agents"][0]["rules"] = [{"name": "me-only", "effect": "ask", "agents": ["sre-agent"]}]
    book = parse_plan_book(json.dumps(document), "plans.json", CATALOG)
    assert book.agents[0].guardrails.rules[0].agents == frozenset({"sre-agent"})
