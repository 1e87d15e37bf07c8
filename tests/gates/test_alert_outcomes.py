"""Every outcome of an alert is visible: its key and status URL, duplicates, resolutions with no run,
alerts that can never act, refusals by size and shape, and the rejected alerts page by page."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import azure.functions as func
import pytest

from shared.core.alert_status import AlertState, intake_key
from shared.core.alerts import parse_alert
from shared.core.model import RequestKind, RunState
from shared.ports import MessageTooLarge
from tests.alert_samples import fired
from tests.pipeline import ALICE, MALLORY, SUB, VM, Pipeline, alert, plan_book, principal_headers

RESTART = "Microsoft.Compute/virtualMachines/restart/action"


def post(p: Pipeline, document: dict[str, Any] | bytes) -> func.HttpResponse:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return p.http("POST", "alerts", "https://gates.example/api/alerts", body=body)


def status_of(p: Pipeline, key: str, user: Any = ALICE, method: str = "GET") -> func.HttpResponse:
    return p.http(method, "alerts/{key}", f"https://gates.example/api/alerts/{key}", headers=principal_headers(user),
                  route_params={"key": key})


def answer(response: func.HttpResponse) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(response.get_body())
    return document


# ---- the 202 leads to the run ---------------------------------------------------------------------
def test_the_202_carries_the_alerts_key_and_a_status_url() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    accepted = answer(post(p, alert()))
    key = intake_key(parse_alert(json.dumps(alert())))
    assert accepted["key"] == key
    assert accepted["status_url"] == f"https://gates.example/api/alerts/{key}"


def test_the_status_url_says_queued_until_planned_then_names_the_run() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    key = answer(post(p, alert()))["key"]
    assert answer(status_of(p, key))["state"] == "queued"
    p.drain()
    status = answer(status_of(p, key))
    run_id = p.run().run_id
    assert status["state"] == "planned"
    assert status["runs"] == [{"run_id": run_id, "url": f"https://gates.example/api/runs/{run_id}"}]
    assert f"started run {run_id}" in status["outcome"]


def test_the_status_is_one_point_read() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    key = answer(post(p, alert()))["key"]
    p.drain()
    reads = p.alert_status.reads
    status_of(p, key)
    assert p.alert_status.reads == reads + 1


def test_an_alert_put_straight_on_the_queue_has_a_status_too() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    p.send_alert(alert())
    p.drain()
    key = intake_key(parse_alert(json.dumps(alert())))
    assert answer(status_of(p, key))["runs"][0]["run_id"] == p.run().run_id


def test_the_status_needs_a_reader_and_an_unknown_key_is_404() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    key = answer(post(p, alert()))["key"]
    assert status_of(p, key, MALLORY).status_code == 403
    assert p.http("GET", "alerts/{key}", "https://x/api/alerts/k", route_params={"key": key}).status_code == 401
    assert status_of(p, "0" * 64).status_code == 404


def test_an_alert_that_started_a_run_costs_the_plan_stage_no_status_write() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    key = answer(post(p, alert()))["key"]
    p.drain()
    assert p.alert_status.rows[key].state is AlertState.QUEUED  # the run holds the outcome
    assert answer(status_of(p, key))["state"] == "planned"


def test_the_status_still_names_the_run_an_alert_started_after_a_newer_run_took_its_key() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    first = answer(post(p, alert(alert_id="x1")))["key"]
    p.drain()
    first_run = p.run().run_id
    p.decide(RequestKind.CONSENT, "deny")
    second = answer(post(p, alert(alert_id="x2", fired="2026-11-24T03:10:00Z")))["key"]
    p.drain()
    second_run = next(r.run_id for r in p.store.all_runs() if r.run_id != first_run)
    assert [r["run_id"] for r in answer(status_of(p, first))["runs"]] == [first_run]
    assert f"started run {first_run}" in answer(status_of(p, first))["outcome"]
    assert [r["run_id"] for r in answer(status_of(p, second))["runs"]] == [second_run]


def test_a_resolution_recorded_on_its_run_is_named_in_its_status() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    post(p, alert())
    p.drain()
    key = answer(post(p, alert(condition="Resolved")))["key"]
    p.drain()
    status = answer(status_of(p, key))
    assert status["state"] == "planned"
    assert f"resolution recorded on run {p.run().run_id}" in status["outcome"]


def test_a_multi_target_alert_names_the_run_each_target_started() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    document = alert()
    other = VM.replace("vm-web-01", "vm-web-02").lower()
    document["data"]["essentials"]["alertTargetIDs"].append(other)
    key = answer(post(p, document))["key"]
    p.drain()
    status = answer(status_of(p, key))
    runs = sorted(r.run_id for r in p.store.all_runs())
    assert status["state"] == "planned"
    assert sorted(r["run_id"] for r in status["runs"]) == runs
    assert len(runs) == 2
    assert status["outcome"].count("started run") == 2


# ---- duplicates -----------------------------------------------------------------------------------
def test_a_duplicate_after_planning_is_answered_as_a_duplicate_naming_the_run() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    post(p, alert())
    p.drain()
    again = post(p, alert())
    assert again.status_code == 200
    document = answer(again)
    assert document["duplicate"] is True
    assert document["runs"] == [p.run().run_id]
    assert not p.bus.queues.get("alerts")  # nothing queued again


def test_a_duplicate_before_planning_is_queued_once_and_says_so() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    post(p, alert())
    again = answer(post(p, alert()))
    assert again["key"] == intake_key(parse_alert(json.dumps(alert())))
    p.drain()
    assert len(p.store.all_runs()) == 1


def test_a_duplicate_on_the_queue_is_recorded_as_one_under_its_key() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    p.send_alert(alert(), message_id="first")
    p.drain()
    p.send_alert(alert(), message_id="second")
    p.drain()
    status = answer(status_of(p, intake_key(parse_alert(json.dumps(alert())))))
    assert "duplicate" in status["outcome"]
    assert [r["run_id"] for r in status["runs"]] == [p.run().run_id]


def test_a_repeat_that_joins_the_open_run_is_an_audit_line_on_it_and_named_in_its_status() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    post(p, alert(fired="2026-11-24T02:58:00Z"))
    key = answer(post(p, alert(fired="2026-11-24T03:05:00Z")))["key"]
    p.drain()
    assert "alert_joined" in p.events()
    assert f"joined open run {p.run().run_id}" in answer(status_of(p, key))["outcome"]


# ---- resolutions and alerts that can never act ---------------------------------------------------
def test_a_resolved_alert_with_no_open_run_is_recorded_under_its_key() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    key = answer(post(p, alert(condition="Resolved")))["key"]
    p.drain()
    assert p.store.all_runs() == []
    status = answer(status_of(p, key))
    assert status["state"] == "planned"
    assert status["runs"] == []
    assert "no run took its firing" in status["outcome"]


def test_a_budget_alert_without_rule_severity_or_target_is_a_run_that_can_never_act() -> None:
    p = Pipeline(plan_book("autonomous", ["vm.restart"]), agent_can={RESTART})
    key = answer(post(p, fired("budget-actual")))["key"]
    p.drain()
    run = p.run()
    assert run.state is RunState.UNMATCHED
    assert run.resource_id == ""
    assert "names no target resource" in run.outcome
    assert "can never act" in run.outcome
    assert p.arm.calls == []
    assert answer(status_of(p, key))["runs"][0]["run_id"] == run.run_id


@pytest.mark.parametrize("target", [f"/subscriptions/{SUB}", f"/subscriptions/{SUB}/resourceGroups/rg-prod-web"])
def test_a_subscription_or_group_target_is_recorded_and_never_acted_on_by_a_resource_runbook(target: str) -> None:
    document = json.loads(plan_book("autonomous", ["vm.restart"]))
    document["plans"][0]["filters"].pop("alertRules")  # the broadest plan: any rule in the subscription
    p = Pipeline(json.dumps(document), agent_can={RESTART})
    post(p, alert(resource=target))
    p.drain()
    run = p.run()
    assert run.state is RunState.UNMATCHED
    assert "runbooks act on single resources" in run.outcome
    assert p.arm.calls == []


# ---- refusals by size and shape -------------------------------------------------------------------
def test_a_body_too_large_for_the_queue_is_refused_413_naming_the_limit_and_kept() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    document = alert()
    document["data"]["essentials"]["description"] = "x" * (2 * 1024 * 1024)
    refused = post(p, document)
    assert refused.status_code == 413
    assert "the limit is 261120 bytes" in answer(refused)["message"]
    (kept,) = p.rejected.items
    assert kept["message_id"] == answer(refused)["rejected_id"]
    assert p.bus.pending() == 0


def test_a_body_that_grows_past_the_queue_limit_when_encoded_again_is_refused_413() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    document = alert()
    # 60 000 characters of three UTF-8 bytes each: 180 KB posted, 360 KB as the JSON escapes queued.
    document["data"]["alertContext"] = {"note": "€" * 60_000}
    body = json.dumps(document, ensure_ascii=False).encode()
    assert len(body) < 256 * 1024
    refused = post(p, body)
    assert refused.status_code == 413
    assert "on the queue" in answer(refused)["message"]


def test_the_limit_follows_the_service_bus_tier_setting() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    p.services.policy = replace(p.services.policy, max_message_bytes=1024 * 1024)
    document = alert()
    document["data"]["alertContext"] = {"big": ["y" * 60_000] * 8}
    assert post(p, document).status_code == 202


def test_a_queue_that_refuses_the_alert_as_too_large_is_answered_413_and_recorded() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))

    def refuse(messages: object) -> None:
        raise MessageTooLarge("The received message exceeds the limit")

    p.bus.send = refuse  # type: ignore[method-assign]
    refused = post(p, alert())
    assert refused.status_code == 413
    assert "queue refused" in answer(refused)["message"]
    assert answer(status_of(p, intake_key(parse_alert(json.dumps(alert())))))["state"] == "refused"
    assert post(p, alert()).status_code == 413  # the sender's retry is refused alike, not taken as a duplicate


@pytest.mark.parametrize(("body", "status", "reason"), [
    (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 400, "deeper than 64 levels"),
    (json.dumps({"schemaId": "azureMonitorCommonAlertSchema", "data": {"x": ["y"] * 10_001}}).encode(), 400,
     "10001 elements"),
    (json.dumps({"a": "z" * 70_000}).encode(), 400, "70000 characters long"),
    (b'{"schemaId": "azureMonitorCommonAlertSchema", "schemaId": "x"}', 400, "'schemaId' appears twice"),
])
def test_a_hostile_body_is_refused_with_the_limit_it_broke_and_kept(body: bytes, status: int, reason: str) -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    refused = post(p, body)
    assert refused.status_code == status
    assert reason in answer(refused)["message"]
    assert reason in p.rejected.items[0]["reason"]


def test_duplicate_target_keys_are_refused_not_resolved_either_way() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    other = VM.replace("vm-web-01", "vm-web-02")
    body = json.dumps(alert()).replace('"alertTargetIDs"', f'"alertTargetIDs": ["{other}"], "alertTargetIDs"', 1)
    refused = post(p, body.encode())
    assert refused.status_code == 400
    assert "'alertTargetIDs' appears twice" in answer(refused)["message"]


@pytest.mark.parametrize("body", [
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    b'{"schemaId": "azureMonitorCommonAlertSchema", "schemaId": "x"}',
    b" " * (300 * 1024),
])
def test_on_the_queue_the_same_limits_set_the_alert_aside_with_its_reason_at_the_first_delivery(body: bytes) -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    p.deliver_raw_alert(body, "hostile")  # raises if the function fails: that would be a redelivery
    (kept,) = p.rejected.items
    assert kept["message_id"] == "hostile"
    assert kept["reason"]


# ---- rejected alerts, page by page ----------------------------------------------------------------
def rejected(p: Pipeline, params: dict[str, str] | None = None, accept: str = "application/json",
             method: str = "GET") -> func.HttpResponse:
    return p.http(method, "rejected-alerts", "https://gates.example/api/rejected-alerts",
                  headers={**principal_headers(ALICE), "Accept": accept}, params=params or {})


def test_rejected_alerts_page_newest_first_with_continuation_tokens() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    for i in range(5):
        p.deliver_raw_alert(f"not json {i}".encode(), f"bad-{i}")
    first = answer(rejected(p, {"limit": "2"}))
    assert [r["message_id"] for r in first["rejected"]] == ["bad-4", "bad-3"]
    assert first["next"].startswith("https://gates.example/api/rejected-alerts?limit=2&continuation=")
    second = answer(rejected(p, {"limit": "2", "continuation": first["continuation"]}))
    third = answer(rejected(p, {"limit": "2", "continuation": second["continuation"]}))
    assert [r["message_id"] for r in second["rejected"] + third["rejected"]] == ["bad-2", "bad-1", "bad-0"]
    assert third["continuation"] is None
    assert third["next"] is None


def test_a_continuation_token_the_list_never_handed_out_is_a_400() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    refused = rejected(p, {"continuation": "forged"})
    assert refused.status_code == 400
    assert "continuation" in answer(refused)["message"]


def test_the_rejected_alerts_page_shows_bodies_inert() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    p.deliver_raw_alert(b"<script>alert(1)</script>", "<img src=x onerror=alert(2)>")
    html = rejected(p, accept="text/html").get_body().decode()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "not JSON" in html


def test_the_rejected_alerts_page_links_to_the_older_page() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    for i in range(3):
        p.deliver_raw_alert(b"nope", f"bad-{i}")
    html = rejected(p, {"limit": "2"}, accept="text/html").get_body().decode()
    assert "continuation=2" in html
    assert "Older" in html


# ---- HEAD wherever GET ----------------------------------------------------------------------------
GET_ROUTES = ["runs/{run_id}", "runs", "rejected-alerts", "alerts/{key}", "health",
              "runs/{run_id}/requests/{request_id}"]


@pytest.mark.parametrize("route", GET_ROUTES)
def test_every_get_route_answers_head(route: str) -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    assert ("HEAD", route) in p.routes
    assert p.routes[("HEAD", route)] is p.routes[("GET", route)]


def test_head_answers_as_get_does_and_changes_nothing() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    key = answer(post(p, alert()))["key"]
    p.drain()
    before = (p.store.raw_rows(), dict(p.alert_status.rows), list(p.rejected.items), p.bus.pending())
    for method in ("HEAD", "GET"):
        assert status_of(p, key, method=method).status_code == 200
        assert rejected(p, method=method).status_code == 200
    assert (p.store.raw_rows(), dict(p.alert_status.rows), list(p.rejected.items), p.bus.pending()) == before
