"""What the guardrails decided is visible: on the run page, in the run's JSON, in the e-mail of a run they
denied and in the Application Insights events; a shadow run says it did nothing and tells no one."""

from __future__ import annotations

import html
import json
import logging
import re
from dataclasses import replace
from typing import Any

import pytest

from shared.core.model import Mode, RunState
from shared.telemetry import dimensions
from tests.pipeline import ALICE, BOB, SUB, Pipeline, alert, principal_headers

READ = "Microsoft.Compute/virtualMachines/read"
RESTART = "Microsoft.Compute/virtualMachines/restart/action"
BROWSER = {"Accept": "text/html,application/xhtml+xml"}


def book(*, mode: str = "autonomous", rules: list[dict[str, Any]] | None = None, shadow: bool = False,
         notify: list[str] | None = None) -> str:
    return json.dumps({
        "version": 3,
        "guardrails": {"rules": rules or [], "shadow": shadow},
        "runbooks": {"book": {"steps": [{"action": "vm.read_instance_view"}, {"action": "vm.restart"}]}},
        "plans": [{"name": "restart-vm", "mode": mode,
                   "filters": {"alertRules": ["vm-not-responding"],
                               "resourceTypes": ["Microsoft.Compute/virtualMachines"]},
                   "scope": {"subscriptions": [SUB]}, "approvers": [ALICE.upn, BOB.upn],
                   "notify": notify or [], "runbook": "book"}],
    })


DENY_RESTART = {"name": "no-restarts-in-prod", "effect": "deny", "actions": ["vm.restart"],
                "reason": "restarts go through change control"}


def started(plans: str, *, app_shadow: bool = False) -> Pipeline:
    p = Pipeline(plans, agent_can={READ, RESTART})
    if app_shadow:
        p.services.policy = replace(p.services.policy, shadow=True)
    p.send_alert(alert())
    p.drain()
    return p


def run_page(p: Pipeline) -> str:
    run_id = p.run().run_id
    response = p.http("GET", "runs/{run_id}", f"https://gates.example/api/runs/{run_id}",
                      headers={**principal_headers(ALICE), **BROWSER}, route_params={"run_id": run_id})
    assert response.status_code == 200
    return response.get_body().decode()


def run_json(p: Pipeline) -> dict[str, Any]:
    run_id = p.run().run_id
    response = p.http("GET", "runs/{run_id}", f"https://gates.example/api/runs/{run_id}",
                      headers={**principal_headers(ALICE), "Accept": "application/json"},
                      route_params={"run_id": run_id})
    document: dict[str, Any] = json.loads(response.get_body())
    return document


def text(markup: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", markup)))


def test_the_run_page_says_which_rule_denied_the_run_before_the_steps() -> None:
    page = run_page(started(book(rules=[DENY_RESTART])))
    assert page.index('id="guardrails"') < page.index("<h2>Steps</h2>")
    shown = text(page)
    assert "Guardrails: Denied by rule no-restarts-in-prod (global)" in shown
    assert "restarts go through change control" in shown
    assert "deny 2. vm.restart — rule no-restarts-in-prod (global)" in shown
    assert "allow 1. vm.read_instance_view — plan restart-vm's autonomous mode" in shown


def test_the_run_page_names_the_ceiling_that_capped_an_autonomous_plan() -> None:
    p = Pipeline(book(), agent_can={READ, RESTART})
    p.services.policy = replace(p.services.policy, ceiling=Mode.REVIEW)
    p.send_alert(alert())
    p.drain()
    shown = text(run_page(p))
    assert "Guardrails: Consent asked by the global autonomy ceiling" in shown
    assert "ceiling: the global autonomy ceiling caps this run below autonomous" in shown


def test_a_shadow_runs_page_says_it_did_nothing_and_what_it_would_have_done() -> None:
    p = started(book(), app_shadow=True)
    run = p.run()
    assert run.state is RunState.SHADOWED
    shown = text(run_page(p))
    assert "Shadow run: nothing was done" in shown
    assert "Guardrails: Would have been allowed by plan restart-vm's autonomous mode" in shown
    assert f"What it would have done: {run.outcome}" in shown
    assert "shadow: the app's shadow setting" in shown


def test_the_run_json_carries_the_guardrails_verdict() -> None:
    document = run_json(started(book(rules=[DENY_RESTART])))
    guardrails = document["guardrails"]
    assert guardrails["effect"] == "deny"
    assert guardrails["decided_by"] == "rule no-restarts-in-prod (global)"
    assert [(s["action"], s["effect"]) for s in guardrails["steps"]] == [("vm.read_instance_view", "allow"),
                                                                          ("vm.restart", "deny")]


def test_a_shadow_runs_json_says_whether_credentials_would_have_been_needed() -> None:
    p = Pipeline(book(), agent_can={READ})  # the agent could read, not restart
    p.services.policy = replace(p.services.policy, shadow=True)
    p.send_alert(alert())
    p.drain()
    guardrails = run_json(p)["guardrails"]
    assert guardrails["shadow"] is True
    assert guardrails["credentials_known"] is True
    assert guardrails["credentials_needed"] == {"1": [RESTART]}


def test_a_run_the_guardrails_denied_emails_the_plan_saying_which_rule_denied_it() -> None:
    p = started(book(rules=[DENY_RESTART], notify=["oncall@contoso.test"]))
    assert p.run().state is RunState.DENIED
    [mail] = p.notifier.sent
    assert "oncall@contoso.test" in mail["to"]
    assert "Run denied" in mail["subject"]
    for body in (mail["text"], text(mail["html"])):
        assert "Denied by rule no-restarts-in-prod (global)" in body
        assert "restarts go through change control" in body


@pytest.mark.parametrize("shadow", ["app", "file", "plan"])
def test_a_shadow_run_sends_no_message_and_no_email(shadow: str) -> None:
    plans = json.loads(book(rules=[DENY_RESTART], notify=["oncall@contoso.test"], shadow=shadow == "file"))
    if shadow == "plan":
        plans["plans"][0]["shadow"] = True
    p = Pipeline(json.dumps(plans), agent_can={READ, RESTART})
    if shadow == "app":
        p.services.policy = replace(p.services.policy, shadow=True)
    p.send_alert(alert())
    p.drain()
    assert p.run().state is RunState.SHADOWED
    assert [m.queue for m in p.bus.sent] == ["alerts"]  # the alert itself, and nothing after it
    assert p.notifier.sent == []
    assert p.arm.calls == []


def test_guardrail_decisions_reach_application_insights_as_dimensions_a_query_can_group_by(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sre_gates"):
        p = started(book(rules=[DENY_RESTART]), app_shadow=True)
    run = p.run()
    events = {e.event: e for e in p.store.list_audit(run.run_id)}
    decided = dimensions(run, events["guardrails_decided"], "plan")
    assert decided["effect"] == "deny"
    assert decided["decided_by"] == "rule no-restarts-in-prod (global)"
    assert decided["shadow"] is True
    assert decided["shadow_by"] == "the app's shadow setting"
    assert (decided["limit"], decided["freeze"]) == ("", "")
    assert "2 vm.restart: deny (rule no-restarts-in-prod (global))" in decided["steps"]
    shadowed = dimensions(run, events["shadow_decided"], "plan")
    assert (shadowed["credentials_needed"], shadowed["credentials_known"]) == (False, True)
    logged = [r for r in caplog.records if r.getMessage().startswith("shadow_decided")]
    assert [r.__dict__["custom_dimensions"]["effect"] for r in logged] == ["deny"]


def test_a_capped_runs_event_carries_the_rule_behind_the_cap() -> None:
    p = Pipeline(book(), agent_can={READ, RESTART})
    p.services.policy = replace(p.services.policy, ceiling=Mode.REVIEW)
    p.send_alert(alert())
    p.drain()
    run = p.run()
    capped = next(e for e in p.store.list_audit(run.run_id) if e.event == "autonomy_capped")
    dims = dimensions(run, capped, "plan")
    assert dims["decided_by"] == "the global autonomy ceiling"
    assert (dims["limit"], dims["freeze"]) == ("", "")
