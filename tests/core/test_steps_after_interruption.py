"""The pure decisions for a step whose host died: what the next delivery of its message, or the stall
sweeper, does with a read, with a write ARM accepted, and with a write whose answer never came."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from shared.core.codec import run_from_dict, run_to_dict
from shared.core.model import (
    ActionKind,
    Actor,
    Alert,
    ArmOperation,
    CredentialSource,
    Mode,
    Request,
    RequestKind,
    RequestState,
    Run,
    RunState,
    Step,
    StepState,
)
from shared.core.steps import OUTCOME_UNKNOWN, claim_step, record_accepted, unknown_outcome
from shared.core.sweeper import StallLimits, sweep

NOW = dt.datetime(2026, 12, 1, 22, 0, tzinfo=dt.UTC)
VM = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm"
LIMITS = StallLimits(claim=dt.timedelta(minutes=15), idle=dt.timedelta(minutes=10))
OPERATION = ArmOperation("POST", f"https://arm{VM}/restart", 202, "https://arm/operations/op1",
                         "https://arm/operationResults/op1", "arm-request-1", "client-1", "client-1")


def run_with(step: Step, *, requests: tuple[Request, ...] = ()) -> Run:
    alert = Alert("a1", "r1", "rule", "Sev1", "Fired", NOW, (VM,))
    return Run("run1", RunState.RUNNING, Mode.AUTONOMOUS, "plan", 1, "book", VM, alert, (step,), (), (), NOW, NOW,
               requests=requests)


def in_flight(kind: ActionKind, *, operation: ArmOperation | None = None,
              source: CredentialSource = CredentialSource.AGENT) -> Step:
    state = StepState.ATTEMPTING if source is CredentialSource.AGENT else StepState.EXECUTING
    action = "vm.read_instance_view" if kind is ActionKind.READ else "vm.restart"
    return Step(0, action, kind, "perm", state=state, credential_source=source, claim_message_id="m1",
                claim_delivery=1, client_request_id="client-1", operation=operation)


def redelivered(run: Run, delivery_count: int = 2, message_id: str = "m1",
                source: CredentialSource = CredentialSource.AGENT):  # type: ignore[no-untyped-def]
    return claim_step(run, 0, source, message_id, delivery_count, NOW)


def grant(sealed: str | None = "sealed") -> Request:
    return Request("c1", RequestKind.CREDENTIALS, NOW + dt.timedelta(minutes=5), (), "h", step_index=0,
                   state=RequestState.GRANTED, decided_by=Actor.person("oid", "alice"), sealed_assertion=sealed)


def test_a_redelivered_read_is_claimed_again_and_runs() -> None:
    claim = redelivered(run_with(in_flight(ActionKind.READ)))
    assert claim.proceed
    assert claim.resume is None
    assert claim.change is not None
    step = claim.change.run.steps[0]
    assert (step.state, step.claim_delivery) == (StepState.ATTEMPTING, 2)


def test_a_read_claimed_again_gets_a_new_client_request_id() -> None:
    claim = redelivered(run_with(in_flight(ActionKind.READ)))
    assert claim.change is not None
    assert claim.change.run.steps[0].client_request_id not in (None, "client-1")


def test_a_redelivered_accepted_write_is_resumed_not_repeated() -> None:
    claim = redelivered(run_with(in_flight(ActionKind.WRITE, operation=OPERATION)))
    assert claim.proceed
    assert claim.resume == OPERATION
    assert claim.change is not None
    assert claim.change.run.steps[0].client_request_id == "client-1"  # nothing new is sent
    assert [e.event for e in claim.change.audit] == ["action_resumed"]


def test_a_redelivered_write_with_no_answer_fails_the_run_outcome_unknown() -> None:
    claim = redelivered(run_with(in_flight(ActionKind.WRITE)))
    assert not claim.proceed
    assert claim.change is not None
    run = claim.change.run
    assert (run.state, run.steps[0].state, run.steps[0].outcome) == (RunState.FAILED, StepState.FAILED,
                                                                     OUTCOME_UNKNOWN)
    assert "client-1" in run.outcome
    assert unknown_outcome(run) == run.steps[0]


def test_a_write_with_no_answer_drops_the_persons_sealed_grant() -> None:
    run = run_with(in_flight(ActionKind.WRITE, source=CredentialSource.DELEGATED), requests=(grant(),))
    claim = redelivered(run, source=CredentialSource.DELEGATED)
    assert claim.change is not None
    assert claim.change.run.requests[0].sealed_assertion is None


def test_another_message_for_a_step_in_flight_does_nothing() -> None:
    for step in (in_flight(ActionKind.READ), in_flight(ActionKind.WRITE, operation=OPERATION)):
        claim = redelivered(run_with(step), message_id="other")
        assert (claim.change, claim.proceed) == (None, False)


def test_the_claiming_delivery_itself_does_nothing_twice() -> None:
    claim = redelivered(run_with(in_flight(ActionKind.READ)), delivery_count=1)
    assert (claim.change, claim.proceed) == (None, False)


def test_a_first_claim_records_the_client_request_id_it_will_send() -> None:
    pending = Step(0, "vm.restart", ActionKind.WRITE, "perm")
    claim = claim_step(run_with(pending), 0, CredentialSource.AGENT, "m1", 1, NOW)
    assert claim.change is not None
    sent = claim.change.run.steps[0].client_request_id
    assert sent is not None
    assert len(sent) == 36
    assert claim_step(run_with(pending), 0, CredentialSource.AGENT, "m1", 1, NOW).change.run.steps[0] \
        .client_request_id == sent  # type: ignore[union-attr]  # fixed by the claim, not by chance


def test_an_accepted_write_records_its_operation() -> None:
    change = record_accepted(run_with(in_flight(ActionKind.WRITE)), 0, OPERATION, NOW)
    assert change is not None
    assert change.run.steps[0].operation == OPERATION
    assert change.run.steps[0].state is StepState.ATTEMPTING
    assert change.messages == ()


def test_an_accepted_persons_write_discards_the_sealed_grant() -> None:
    run = run_with(in_flight(ActionKind.WRITE, source=CredentialSource.DELEGATED), requests=(grant(),))
    change = record_accepted(run, 0, OPERATION, NOW)
    assert change is not None
    assert change.run.requests[0].sealed_assertion is None
    assert [e.event for e in change.audit] == ["action_accepted", "credential_revoked"]


def test_an_operation_is_recorded_once() -> None:
    run = run_with(in_flight(ActionKind.WRITE, operation=OPERATION))
    assert record_accepted(run, 0, replace(OPERATION, url="other"), NOW) is None


def test_no_operation_is_recorded_on_a_step_no_longer_in_flight() -> None:
    done = replace(in_flight(ActionKind.WRITE), state=StepState.SUCCEEDED)
    assert record_accepted(run_with(done), 0, OPERATION, NOW) is None


def test_the_recorded_operation_survives_storage() -> None:
    run = run_with(in_flight(ActionKind.WRITE, operation=OPERATION))
    assert run_from_dict(run_to_dict(run)).steps[0] == run.steps[0]


def stale(run: Run) -> Run:
    return replace(run, updated_at=NOW - dt.timedelta(minutes=16))


def test_the_sweeper_hands_a_stale_read_claim_to_a_new_message() -> None:
    found = sweep(stale(run_with(in_flight(ActionKind.READ))), NOW, LIMITS)
    assert found.change is not None
    [message] = found.change.messages
    step = found.change.run.steps[0]
    assert (step.claim_message_id, step.claim_delivery) == (message.message_id, 0)
    assert message.body == {"kind": "attempt_step", "run_id": "run1", "step": 0}
    # and that message's first delivery meets the step as a redelivery does
    assert claim_step(found.change.run, 0, CredentialSource.AGENT, message.message_id, 1, NOW).proceed


def test_the_sweeper_hands_a_stale_accepted_persons_write_to_an_execution_message() -> None:
    run = run_with(in_flight(ActionKind.WRITE, operation=OPERATION, source=CredentialSource.DELEGATED))
    found = sweep(stale(run), NOW, LIMITS)
    assert found.change is not None
    assert found.change.messages[0].body["kind"] == "execute_step"
    claim = claim_step(found.change.run, 0, CredentialSource.DELEGATED, found.change.messages[0].message_id, 1, NOW)
    assert claim.resume == OPERATION


def test_the_sweeper_fails_a_stale_write_with_no_answer_outcome_unknown() -> None:
    found = sweep(stale(run_with(in_flight(ActionKind.WRITE))), NOW, LIMITS)
    assert found.change is not None
    assert found.change.run.state is RunState.FAILED
    assert found.change.run.steps[0].outcome == OUTCOME_UNKNOWN


def test_the_sweeper_leaves_a_recent_claim_alone() -> None:
    assert sweep(run_with(in_flight(ActionKind.READ)), NOW + dt.timedelta(minutes=5), LIMITS).change is None


def test_a_step_that_failed_for_a_reason_arm_gave_is_no_unknown_outcome() -> None:
    failed = replace(in_flight(ActionKind.WRITE), state=StepState.FAILED, outcome="Conflict: busy")
    assert unknown_outcome(run_with(failed)) is None
