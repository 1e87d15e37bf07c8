"""Previews bound to consent, through the real function app with in-memory ports: the approver sees what a
write will change; if the resource changes before the write, the write does not run and consent is asked
again with the new state; a no (or no answer) to that ends the run drifted."""

from __future__ import annotations

import datetime as dt
import json

from shared.core.model import RequestKind, RequestState, RunState
from shared.core.requests import plan_hash
from tests.pipeline import ALICE, SUB, Pipeline, alert

SCALE_SET = f"/subscriptions/{SUB}/resourceGroups/rg-prod-workers/providers/Microsoft.Compute/" \
            "virtualMachineScaleSets/vmss-workers"
WRITE = "Microsoft.Compute/virtualMachineScaleSets/write"


def scale_out(agent_can: set[str]) -> Pipeline:
    plans = json.dumps({
        "version": 1,
        "runbooks": {"scale": {"steps": [{"action": "vmss.set_capacity", "parameters": {"capacity": 4}}]}},
        "plans": [{"name": "scale", "mode": "review", "runbook": "scale",
                   "filters": {"alertRules": ["workers-busy"],
                               "resourceTypes": ["Microsoft.Compute/virtualMachineScaleSets"]},
                   "scope": {"subscriptions": [SUB]}, "approvers": ["alice@contoso.test", "bob@contoso.test"]}],
    })
    p = Pipeline(plans, agent_can=agent_can, user_can={WRITE})
    p.arm.document = {"sku": {"name": "Standard_D2s_v5", "capacity": 2}}
    p.send_alert(alert("workers-busy", SCALE_SET))
    p.drain()
    return p


def scaled_by_hand(p: Pipeline, capacity: int) -> None:
    p.arm.document = {"sku": {"name": "Standard_D2s_v5", "capacity": capacity}}


def test_consent_is_asked_with_the_writes_before_and_after() -> None:
    p = scale_out({WRITE})
    request = p.pending_request(RequestKind.CONSENT)
    (preview,) = request.previews
    assert [(f.label, f.before, f.after) for f in preview.fields] == [("instances", 2, 4)]
    assert "step 1 (vmss.set_capacity): instances 2 → 4" in p.open_page(request).get_body().decode()
    assert "instances 2 → 4" in p.notifier.sent[-1]["text"]


def test_the_plan_hash_a_decision_binds_to_includes_the_preview() -> None:
    p = scale_out({WRITE})
    request = p.pending_request(RequestKind.CONSENT)
    assert request.plan_hash == plan_hash(p.run(), previews=request.previews)
    assert request.plan_hash != plan_hash(p.run())


def test_an_unchanged_resource_is_written_once_consent_is_given() -> None:
    p = scale_out({WRITE})
    p.decide(RequestKind.CONSENT, "approve")
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vmss.set_capacity", "agent")]
    assert "precondition_changed" not in p.events()


def test_a_resource_changed_after_consent_is_not_written_and_consent_is_asked_again() -> None:
    p = scale_out({WRITE})
    first = p.pending_request(RequestKind.CONSENT)
    scaled_by_hand(p, 3)
    p.decide(RequestKind.CONSENT, "approve")
    assert p.arm.resource.executed == []
    run = p.run()
    assert run.state is RunState.AWAITING_CONSENT
    again = p.pending_request(RequestKind.CONSENT)
    assert again.request_id != first.request_id
    assert [(f.before, f.after) for f in again.previews[0].fields] == [(3, 4)]
    changed = next(e for e in p.store.list_audit(run.run_id) if e.event == "precondition_changed")
    assert changed.details["seen"]["fields"][0]["before"] == 2
    assert changed.details["now"]["fields"][0]["before"] == 3


def test_consent_to_the_changed_resource_lets_the_write_run() -> None:
    p = scale_out({WRITE})
    scaled_by_hand(p, 3)
    p.decide(RequestKind.CONSENT, "approve")
    p.decide(RequestKind.CONSENT, "approve")
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vmss.set_capacity", "agent")]


def test_a_no_to_the_changed_resource_ends_the_run_drifted() -> None:
    p = scale_out({WRITE})
    scaled_by_hand(p, 3)
    p.decide(RequestKind.CONSENT, "approve")
    p.decide(RequestKind.CONSENT, "deny")
    run = p.run()
    assert run.state is RunState.DRIFTED
    assert p.arm.resource.executed == []
    assert "changed after consent" in run.outcome


def test_no_answer_about_the_changed_resource_ends_the_run_drifted() -> None:
    p = scale_out({WRITE})
    scaled_by_hand(p, 3)
    p.decide(RequestKind.CONSENT, "approve")
    p.pass_deadline(dt.timedelta(hours=1))
    assert p.run().state is RunState.DRIFTED
    assert p.arm.resource.executed == []


def test_a_change_while_credentials_were_asked_stops_the_delegated_write_and_drops_the_grant() -> None:
    p = scale_out(set())  # the agent may not write: credentials are asked after consent
    p.decide(RequestKind.CONSENT, "approve")
    scaled_by_hand(p, 5)
    p.decide(RequestKind.CREDENTIALS, "approve", ALICE)
    run = p.run()
    assert run.state is RunState.AWAITING_CONSENT
    assert p.arm.resource.executed == []
    granted = next(r for r in run.requests if r.kind is RequestKind.CREDENTIALS)
    assert (granted.state, granted.sealed_assertion) == (RequestState.GRANTED, None)
    assert [(f.before, f.after) for f in p.pending_request(RequestKind.CONSENT).previews[0].fields] == [(5, 4)]


def test_after_a_drift_the_new_consent_runs_the_step_through_its_credentials_again() -> None:
    p = scale_out(set())
    p.decide(RequestKind.CONSENT, "approve")
    scaled_by_hand(p, 5)
    p.decide(RequestKind.CREDENTIALS, "approve", ALICE)
    p.decide(RequestKind.CONSENT, "approve")
    p.decide(RequestKind.CREDENTIALS, "approve", ALICE)
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vmss.set_capacity", "user:alice")]
