"""A read step's claim and its outcome are decided one after the other and written as one change."""

from __future__ import annotations

import datetime as dt

from shared.core.arm_outcomes import ArmOutcome, OutcomeKind
from shared.core.change import Change, then
from shared.core.model import ActionKind, Alert, CredentialSource, Mode, Run, RunState, Step, StepState
from shared.core.steps import claim_step, record_outcome

NOW = dt.datetime(2026, 12, 2, 6, 0, tzinfo=dt.UTC)
VM = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm"


def pending_read_then_restart() -> Run:
    alert = Alert("a1", "r1", "rule", "Sev1", "Fired", NOW, (VM,))
    steps = (Step(0, "vm.read_instance_view", ActionKind.READ, "read"), Step(1, "vm.restart", ActionKind.WRITE, "w"))
    return Run("run1", RunState.RUNNING, Mode.AUTONOMOUS, "plan", 1, "book", VM, alert, steps, (), (), NOW, NOW,
               audit_seq=4, etag="read-etag")


def claimed_and_read() -> Change:
    run = pending_read_then_restart()
    claim = claim_step(run, 0, CredentialSource.AGENT, "m1", 1, NOW)
    assert claim.change is not None
    outcome = record_outcome(claim.change.run, 0, ArmOutcome(OutcomeKind.SUCCEEDED, 200, body={}), NOW)
    return then(claim.change, outcome)


def test_the_claim_and_the_outcome_are_one_change_on_the_etag_the_run_was_read_with() -> None:
    change = claimed_and_read()
    assert change.run.etag == "read-etag"
    assert change.run.steps[0].state is StepState.SUCCEEDED
    assert change.run.steps[0].client_request_id


def test_the_claims_audit_line_comes_first_and_the_lines_are_numbered_on() -> None:
    change = claimed_and_read()
    assert [(e.seq, e.event) for e in change.audit] == [(5, "action_attempted"), (6, "action_executed")]
    assert change.run.audit_seq == 6


def test_the_combined_change_sends_what_the_outcome_sends() -> None:
    change = claimed_and_read()
    assert [m.body["step"] for m in change.messages] == [1]
    assert change.run.outbox == change.messages
