"""Running a step at most once: claim it before ARM is called, record what ARM answered, and turn a
security challenge into a credential request (or, met with a person's credentials, into a failure)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace
from typing import Any

from shared.core.arm_outcomes import ArmOutcome, OutcomeKind
from shared.core.change import Change, ChangeBuilder, step_of
from shared.core.errors import IllegalTransition
from shared.core.messages import AttemptStep, ExecuteStep, OpenCredentialRequest
from shared.core.model import (
    ActionKind,
    Actor,
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
from shared.core.modes import challenge_leads_to_elevation, step_allowed_in_mode
from shared.core.transitions import RunEvent

MAX_CREDENTIAL_REQUESTS_PER_STEP = 2
OUTCOME_UNKNOWN = "interrupted: outcome unknown"  # a write sent to ARM whose answer never came


@dataclass(frozen=True)
class Claim:
    """The outcome of asking to run a step: `change` to write first, and whether to call ARM after.
    With `resume`, ARM already accepted the write: follow that operation, never send the write again."""

    change: Change | None
    proceed: bool
    reason: str
    resume: ArmOperation | None = None


def claim_step(
    run: Run,
    step_index: int,
    source: CredentialSource,
    message_id: str,
    delivery_count: int,
    now: dt.datetime,
    actor: Actor | None = None,
) -> Claim:
    """Mark a step in flight before its action runs, so a step runs at most once.

    A later delivery of the same message that finds the step still in flight means the host died
    during the call (`after_interruption` says what happens then).
    """
    step = step_of(run, step_index)
    if step is None:
        return Claim(None, False, f"the run has no step {step_index}")
    if run.state.is_terminal:
        return Claim(None, False, f"the run already ended ({run.state.value})")
    if step.state in (StepState.ATTEMPTING, StepState.EXECUTING):
        if step.claim_message_id == message_id and delivery_count > step.claim_delivery:
            return after_interruption(run, step, message_id, delivery_count, now, Actor.system())
        return Claim(None, False, "another delivery is running this step")
    expected = StepState.PENDING if source is CredentialSource.AGENT else StepState.AWAITING_CREDENTIALS
    if run.state is not RunState.RUNNING or step.state is not expected:
        return Claim(None, False, f"step is {step.state.value} and run is {run.state.value}")
    if run.current_step() is not step:
        return Claim(None, False, "an earlier step has not finished")
    if source is CredentialSource.DELEGATED and granted_credential(run, step_index) is None:
        return Claim(None, False, "no granted credential for this step")
    _guard_write(run, step)
    b = ChangeBuilder(run, now)
    if not step_allowed_in_mode(step, run.mode):
        b.set_step(replace(step, state=StepState.FAILED, outcome="refused: write in a read-only plan"))
        b.end(RunEvent.STEP_FAILED, Actor.system(), "a read-only plan cannot write; no action taken")
        return Claim(b.build(), False, "read-only")
    in_flight = StepState.ATTEMPTING if source is CredentialSource.AGENT else StepState.EXECUTING
    b.set_step(replace(step, state=in_flight, credential_source=source, claim_message_id=message_id,
                       claim_delivery=delivery_count,
                       client_request_id=client_request_id(run, step_index, message_id, delivery_count)))
    who = actor or Actor.agent()
    b.log("action_attempted", who, f"step {step_index + 1}: {step.action} on {run.resource_id.rsplit('/', 1)[-1]} "
          f"with {'the agent identity' if source is CredentialSource.AGENT else who.name + ' credentials'}",
          step=step_index, action=step.action, identity=source.value)
    return Claim(b.build(), True, "claimed")


def after_interruption(run: Run, step: Step, message_id: str, delivery_count: int, now: dt.datetime,
                       actor: Actor) -> Claim:
    """A step whose host died while it was in flight, found by the next delivery of its message.

    A read changes nothing, so it runs again. A write ARM accepted is followed to ARM's own outcome
    (its operation was recorded before it was followed). A write sent with no answer recorded may or
    may not have acted: it is not repeated, and the run fails saying the outcome is unknown, with the id
    that finds it in ARM's activity log."""
    b = ChangeBuilder(run, now)
    n = step.index + 1
    if step.kind is ActionKind.READ:
        b.set_step(replace(step, claim_message_id=message_id, claim_delivery=delivery_count,
                           client_request_id=client_request_id(run, step.index, message_id, delivery_count)))
        b.log("action_repeated", actor, f"step {n} ({step.action}) was in flight when its host stopped; "
              "a read changes nothing, so it runs again", step=step.index)
        return Claim(b.build(), True, "read again")
    if step.operation is not None:
        b.set_step(replace(step, claim_message_id=message_id, claim_delivery=delivery_count))
        b.log("action_resumed", actor, f"step {n} ({step.action}) was in flight when its host stopped, after "
              "ARM had accepted it; following ARM's operation to its end instead of sending it again",
              step=step.index, operation=step.operation.async_operation or step.operation.location,
              correlation_id=step.operation.correlation_id)
        return Claim(b.build(), True, "resume", resume=step.operation)
    return Claim(unanswered_write(run, step, now, actor), False, "interrupted")


def unanswered_write(run: Run, step: Step, now: dt.datetime, actor: Actor) -> Change:
    """End the run of a write sent to ARM whose answer never came: never repeated, outcome unknown."""
    b = ChangeBuilder(run, now)
    n = step.index + 1
    if step.credential_source is CredentialSource.DELEGATED:
        revoke(b, step.index)
    lookup = f"; correlation id {step.client_request_id}" if step.client_request_id else ""
    b.set_step(replace(step, state=StepState.FAILED, outcome=OUTCOME_UNKNOWN))
    b.log("action_interrupted", actor,
          f"step {n} ({step.action}) was sent to ARM and its host stopped before ARM answered; whether it "
          f"acted is unknown, and it is not repeated so that it runs at most once{lookup}",
          step=step.index, correlation_id=step.client_request_id)
    b.end(RunEvent.STEP_FAILED, actor, f"step {n} interrupted during {step.action}; outcome unknown, not "
          f"repeated — check ARM's activity log{lookup}")
    return b.build()


def record_accepted(run: Run, step_index: int, operation: ArmOperation, now: dt.datetime) -> Change | None:
    """ARM accepted the write and carries it out: keep where to follow it before following it.

    A person's sealed grant is discarded now: ARM holds the write, and following it again after a host
    died is a read of the operation's status, done with the agent's own identity."""
    step = step_of(run, step_index)
    if step is None or step.state not in (StepState.ATTEMPTING, StepState.EXECUTING) or run.state.is_terminal \
            or step.operation is not None:
        return None
    b = ChangeBuilder(run, now)
    b.set_step(replace(step, operation=operation))
    b.log("action_accepted", Actor.system("azure-resource-manager"),
          f"step {step_index + 1} ({step.action}): ARM accepted it (HTTP {operation.status}) and carries it out",
          step=step_index, operation=operation.async_operation or operation.location,
          request_id=operation.request_id, correlation_id=operation.correlation_id)
    if step.credential_source is CredentialSource.DELEGATED:
        revoke(b, step_index)
    return b.build()


def client_request_id(run: Run, step_index: int, message_id: str, delivery_count: int) -> str:
    """The id a claim sends ARM with its request: a GUID, as ARM expects, fixed by the claim itself."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sre-gates:{run.run_id}:{step_index}:{message_id}:{delivery_count}"))


def unknown_outcome(run: Run) -> Step | None:
    """The write whose outcome nobody knows (the host died between sending it and ARM's answer)."""
    return next((s for s in run.steps if s.state is StepState.FAILED and s.outcome == OUTCOME_UNKNOWN), None)


def record_outcome(run: Run, step_index: int, outcome: ArmOutcome, now: dt.datetime) -> Change | None:
    step = step_of(run, step_index)
    if step is None or step.state not in (StepState.ATTEMPTING, StepState.EXECUTING) or run.state.is_terminal:
        return None
    source = step.credential_source or CredentialSource.AGENT
    granted = _granted_request(run, step_index)
    acted_as = granted.decided_by if source is CredentialSource.DELEGATED and granted and granted.decided_by \
        else Actor.agent()
    b = ChangeBuilder(run, now)
    following = step_of(run, step_index + 1)
    # The grant serves the next step too when it covers it: kept sealed for it, revoked after the last.
    carried = source is CredentialSource.DELEGATED and outcome.kind is OutcomeKind.SUCCEEDED and granted is not None \
        and following is not None and following.state is StepState.PENDING and following.index in granted.steps_covered
    if source is CredentialSource.DELEGATED and not carried:
        revoke(b, step_index)
    if outcome.kind is OutcomeKind.SUCCEEDED:
        b.set_step(replace(step, state=StepState.SUCCEEDED, outcome=f"HTTP {outcome.status}",
                           result=_summary(outcome)))
        b.log("action_executed", acted_as, f"step {step_index + 1} ({step.action}) succeeded",
              step=step_index, action=step.action, identity=source.value, status=outcome.status)
        if following is None:
            b.end(RunEvent.LAST_STEP_SUCCEEDED, Actor.system(), "every step succeeded")
        elif carried and granted is not None:
            b.set_step(replace(following, state=StepState.AWAITING_CREDENTIALS))
            b.move(RunEvent.STEP_SUCCEEDED)
            b.log("credential_reused", Actor.system(),
                  f"the credentials granted by {acted_as.name} cover step {following.index + 1} too; "
                  "it exchanges them for its own token", request_id=granted.request_id, step=following.index)
            b.send(ExecuteStep(run.run_id, following.index), f"step-{following.index}-{granted.request_id}")
        else:
            b.move(RunEvent.STEP_SUCCEEDED)
            b.send(AttemptStep(run.run_id, following.index), f"step-{following.index}")
        return b.build()
    if outcome.is_challenge and challenge_leads_to_elevation(source):
        b.set_step(replace(step, state=StepState.AWAITING_CREDENTIALS, outcome=f"{outcome.code}",
                           claim_message_id=None, claim_delivery=0, claims=outcome.claims))
        b.log("security_challenge", Actor.agent(),
              f"step {step_index + 1} ({step.action}): the agent lacks permission ({outcome.code})",
              step=step_index, code=outcome.code, status=outcome.status, permission=step.permission)
        b.move(RunEvent.STEP_CHALLENGED)
        # Asked again (the resource changed and consent was given anew), the message needs an id of its own.
        asked = sum(1 for r in run.requests if r.kind is RequestKind.CREDENTIALS and r.step_index == step_index)
        b.send(OpenCredentialRequest(run.run_id, step_index), f"step-{step_index}" + (f"-{asked}" if asked else ""))
        return b.build()
    why = (f"the approver's credentials lack permission too ({outcome.code})" if outcome.is_challenge
           else f"{outcome.code}: {outcome.message}")
    b.set_step(replace(step, state=StepState.FAILED, outcome=why[:500]))
    b.log("action_failed", acted_as, f"step {step_index + 1} ({step.action}) failed: {why}"[:1000],
          step=step_index, code=outcome.code, status=outcome.status, identity=source.value)
    b.end(RunEvent.STEP_FAILED, Actor.system(), f"step {step_index + 1} ({step.action}) failed")
    return b.build()


def credentials_unusable(run: Run, step_index: int, reason: str, now: dt.datetime,
                         stale: bool = False) -> Change | None:
    """The on-behalf-of exchange failed: the person cannot lend this access; nothing is done.

    A `stale` grant (the person's sign-in expired between the grant and its use) is not a "no": the
    person is asked again, once, rather than ending the run."""
    step = step_of(run, step_index)
    if step is None or step.state is not StepState.EXECUTING or run.state.is_terminal:
        return None
    b = ChangeBuilder(run, now)
    revoke(b, step_index)
    asked = sum(1 for r in run.requests if r.kind is RequestKind.CREDENTIALS and r.step_index == step_index)
    if stale and asked < MAX_CREDENTIAL_REQUESTS_PER_STEP:
        b.set_step(replace(step, state=StepState.AWAITING_CREDENTIALS, outcome="granted sign-in expired",
                           claim_message_id=None, claim_delivery=0))
        b.log("credential_stale", Actor.system("entra-id"),
              f"the granted sign-in expired before step {step_index + 1} ran; asking again", step=step_index)
        b.move(RunEvent.STEP_CHALLENGED)
        b.send(OpenCredentialRequest(run.run_id, step_index), f"step-{step_index}-again-{asked}")
        return b.build()
    b.set_step(replace(step, state=StepState.FAILED, outcome=reason[:500]))
    b.log("credential_unusable", Actor.system("entra-id"), reason[:1000], step=step_index)
    b.end(RunEvent.STEP_FAILED, Actor.system("entra-id"),
          f"the granted credentials could not be used for step {step_index + 1}; no action taken")
    return b.build()


def _granted_request(run: Run, step_index: int) -> Request | None:
    """The grant a step ran with (its own, or one carried from an earlier step), also once its sealed
    credential was discarded."""
    return next((r for r in reversed(run.requests) if r.kind is RequestKind.CREDENTIALS
                 and step_index in r.steps_covered and r.state is RequestState.GRANTED), None)


def granted_credential(run: Run, step_index: int) -> Request | None:
    """The grant a step can still run with: one that covers it and still holds its sealed credential."""
    return next((r for r in run.requests if r.kind is RequestKind.CREDENTIALS and step_index in r.steps_covered
                 and r.state is RequestState.GRANTED and r.sealed_assertion), None)


def revoke(b: ChangeBuilder, step_index: int) -> None:
    """Discard the sealed grant for a step, with its audit line (revocation is part of the trail)."""
    request = granted_credential(b.run, step_index)
    if request is not None:
        b.set_request(replace(request, sealed_assertion=None))
        b.log("credential_revoked", Actor.system(),
              f"delegated credentials discarded after step {step_index + 1}", request_id=request.request_id,
              step=step_index)


def _guard_write(run: Run, step: Step) -> None:
    """No write in review mode without a person's consent, whatever sequence of events led here."""
    if step.kind is not ActionKind.WRITE or run.mode is not Mode.REVIEW:
        return
    consented = any(r.kind is RequestKind.CONSENT and r.state is RequestState.GRANTED for r in run.requests)
    if not consented:
        raise IllegalTransition("step", step.state.value, "write without consent")


def _summary(outcome: ArmOutcome) -> dict[str, Any]:
    body = outcome.body or {}
    keep: dict[str, Any] = {k: body[k] for k in ("status", "name", "id") if k in body and isinstance(body[k], str)}
    statuses = body.get("statuses")
    if isinstance(statuses, list):
        keep["statuses"] = [s.get("code") for s in statuses if isinstance(s, dict)][:5]
    return keep
