"""Malformed alerts are set aside with a reason; valid alerts around them are processed."""

from __future__ import annotations

import json

from shared.core.model import RequestKind, RunState
from tests.pipeline import VM, Pipeline, alert, plan_book

RESTART = "Microsoft.Compute/virtualMachines/restart/action"


def test_malformed_alerts_are_kept_with_a_reason_and_valid_ones_around_them_run() -> None:
    p = Pipeline(plan_book("autonomous", ["vm.restart"]), agent_can={RESTART})
    p.send_alert(alert(alert_id="before"), message_id="ok-1")
    p.drain()
    p.deliver_raw_alert(b"{not json", "bad-1")
    bad_targets = alert()
    bad_targets["data"]["essentials"]["alertTargetIDs"] = "not a list"
    p.deliver_raw_alert(json.dumps(bad_targets).encode(), "bad-2")
    p.deliver_raw_alert(json.dumps({"schemaId": "other"}).encode(), "bad-3")
    p.send_alert(alert(resource=VM.replace("vm-web-01", "vm-web-02"), alert_id="after"), message_id="ok-2")
    p.drain()
    reasons = {r["message_id"]: r["reason"] for r in p.rejected.items}
    assert set(reasons) == {"bad-1", "bad-2", "bad-3"}
    assert "not JSON" in reasons["bad-1"]
    assert "alertTargetIDs is not a list" in reasons["bad-2"]
    assert "common alert schema" in reasons["bad-3"]
    assert sorted(r.state.value for r in p.store.all_runs()) == ["succeeded", "succeeded"]


def test_an_alert_no_plan_matches_is_recorded_without_action() -> None:
    p = Pipeline(plan_book("autonomous", ["vm.restart"]), agent_can={RESTART})
    p.send_alert(alert(rule="disk-full"))
    p.drain()
    run = p.run()
    assert run.state is RunState.UNMATCHED
    assert p.arm.calls == []


def test_alerts_on_different_resources_never_merge() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]), agent_can={RESTART})
    p.send_alert(alert(alert_id="x1"), message_id="1")
    p.send_alert(alert(resource=VM.replace("vm-web-01", "vm-web-02"), alert_id="x2"), message_id="2")
    p.drain()
    assert len(p.store.all_runs()) == 2


def test_a_repeat_of_an_open_runs_alert_joins_it() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]), agent_can={RESTART})
    p.send_alert(alert(fired="2026-11-24T02:58:00Z"), message_id="1")
    p.send_alert(alert(fired="2026-11-24T03:05:00Z"), message_id="2")
    p.drain()
    assert len(p.store.all_runs()) == 1
    assert "alert_joined" in p.events()


def test_a_resolved_alert_cancels_a_run_still_waiting_for_consent() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]), agent_can={RESTART})
    p.send_alert(alert(), message_id="1")
    p.drain()
    p.send_alert(alert(condition="Resolved"), message_id="2")
    p.drain()
    assert p.run().state is RunState.CANCELLED
    assert p.arm.calls == []


def test_the_http_intake_refuses_a_malformed_alert_with_the_reason() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    response = p.http("POST", "alerts", "https://x/api/alerts", body=b"{}")
    assert response.status_code == 400
    assert b"common alert schema" in response.get_body()


def test_the_http_intake_queues_a_valid_alert_once() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    answers = [p.http("POST", "alerts", "https://x/api/alerts", body=json.dumps(alert()).encode()) for _ in range(2)]
    assert [a.status_code for a in answers] == [202, 202]
    assert len(p.bus.queues["alerts"]) == 1


def test_a_late_resolution_of_an_older_firing_does_not_cancel_a_newer_run() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]), agent_can={RESTART})
    p.send_alert(alert(alert_id="x1"), message_id="1")
    p.drain()
    p.decide(RequestKind.CONSENT, "deny")
    p.send_alert(alert(alert_id="x2", fired="2026-11-24T03:10:00Z"), message_id="2")
    p.drain()
    p.send_alert(alert(alert_id="x1", condition="Resolved"), message_id="3")
    p.drain()
    states = sorted(r.state.value for r in p.store.all_runs())
    assert states == ["awaiting_consent", "denied"]


def test_a_run_that_took_two_firings_is_cancelled_only_when_both_resolve() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]), agent_can={RESTART})
    p.send_alert(alert(alert_id="x1"), message_id="1")
    p.send_alert(alert(alert_id="x2", fired="2026-11-24T03:01:00Z"), message_id="2")
    p.drain()
    p.send_alert(alert(alert_id="x1", condition="Resolved"), message_id="3")
    p.drain()
    assert p.run().state is RunState.AWAITING_CONSENT
    p.send_alert(alert(alert_id="x2", condition="Resolved", fired="2026-11-24T03:01:00Z"), message_id="4")
    p.drain()
    assert p.run().state is RunState.CANCELLED


def test_an_alert_refused_at_the_http_intake_is_kept_with_its_reason() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    p.http("POST", "alerts", "https://x/api/alerts", body=b"not json")
    (kept,) = p.rejected.items
    assert "not JSON" in kept["reason"]
    assert kept["body"] == "not json"


def test_a_repeat_firing_is_recorded_beside_its_run_without_rewriting_it() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]), agent_can={RESTART})
    p.send_alert(alert(fired="2026-11-24T02:58:00Z"), message_id="1")
    p.drain()
    commits = p.store.commits
    p.send_alert(alert(fired="2026-11-24T03:05:00Z"), message_id="2")
    p.send_alert(alert(fired="2026-11-24T03:05:00Z"), message_id="2-again")  # the same firing, twice
    p.drain()
    assert p.store.commits == commits
    assert p.events().count("alert_joined") == 1


def test_a_repeat_taken_by_a_run_that_ended_is_no_new_run_when_delivered_again() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]), agent_can={RESTART})
    p.send_alert(alert(fired="2026-11-24T02:58:00Z"), message_id="1")
    p.send_alert(alert(fired="2026-11-24T03:05:00Z"), message_id="2")
    p.drain()
    p.decide(RequestKind.CONSENT, "deny")
    p.send_alert(alert(fired="2026-11-24T03:05:00Z"), message_id="2-redelivered")
    p.drain()
    assert [r.state for r in p.store.all_runs()] == [RunState.DENIED]
