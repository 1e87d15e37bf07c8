"""Runs nothing has moved for a while: each one ends, or gets the message it was waiting for, so that a
lost or dead-lettered message never leaves a run open forever."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from shared.core.change import Change, ChangeBuilder
from shared.core.messages import AttemptStep, ExecuteStep, OpenConsent, OpenCredentialRequest
from shared.core.model import (
    ActionKind,
    Actor,
    CredentialSource,
    OutboundMessage,
    RequestState,
    Run,
    RunState,
    Step,
    StepState,
)
from shared.core.requests import expire
from shared.core.steps import granted_credential, revoke, unanswered_write
from shared.core.transitions import RunEvent


@dataclass(frozen=True)
class StallLimits:
    claim: dt.timedelta  # a step in flight longer than the function timeout (plus margin): its host died
    idle: dt.timedelta  # a run nothing has moved for this long: its next message was lost or dead-lettered
    deadline_grace: dt.timedelta = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Sweep:
    change: Change | None = None
    resend: tuple[OutboundMessage, ...] = ()


def sweep(run: Run, now: dt.datetime, limits: StallLimits) -> Sweep:
    """What a stalled run needs so that it still ends: hand a step whose host died mid-action to a new
    message (never repeating a write), expire a request whose deadline message was lost, drop a granted credential left
    unused, or send again the message that should have moved it on."""
    if run.state.is_terminal or run.state is RunState.PAUSED:
        # A paused run waits for the kill switch to be lifted, however long: lifting resumes it (and
        # the sweeper's shell resumes paused runs once the switch is off), re-checking what lapsed.
        return Sweep()
    idle_for = now - run.updated_at
    in_flight = next((s for s in run.steps if s.state in (StepState.ATTEMPTING, StepState.EXECUTING)), None)
    if in_flight is not None:
        if idle_for < limits.claim:
            return Sweep()
        return Sweep(change=_hand_over(run, in_flight, now))
    overdue = next((r for r in run.requests if r.state is RequestState.PENDING
                    and now >= r.deadline + limits.deadline_grace), None)
    if overdue is not None:
        return Sweep(change=expire(run, overdue.request_id, now))
    if idle_for < limits.idle:
        return Sweep()
    stale = next((r for r in run.requests if r.sealed_assertion is not None), None)
    if stale is not None and stale.step_index is not None and idle_for >= 2 * limits.idle:
        b = ChangeBuilder(run, now)
        # The step the grant waits for: with one grant serving several steps, not always the first.
        index = next((i for i in stale.steps_covered if run.steps[i].state is StepState.AWAITING_CREDENTIALS),
                     stale.step_index)
        revoke(b, index)
        step = run.steps[index]
        b.set_step(replace(step, state=StepState.FAILED, outcome="granted credentials went unused"))
        b.end(RunEvent.STEP_FAILED, Actor.system("sweeper"),
              f"the credentials granted for step {index + 1} were not used in time; no action taken")
        return Sweep(change=b.build())
    return Sweep(resend=_lost_message(run, now))


def _hand_over(run: Run, step: Step, now: dt.datetime) -> Change:
    """A claim older than any host lives: its host died and its message is gone too (a redelivery
    would have come by now). The claim passes to a new message, whose first delivery then meets the
    step as a redelivery does: a read runs again, an accepted write is followed to its end, and a
    write with no answer ends the run with its outcome unknown."""
    b = ChangeBuilder(run, now)
    key = f"{int(now.timestamp())}"
    message = AttemptStep(run.run_id, step.index) if step.credential_source is not CredentialSource.DELEGATED \
        else ExecuteStep(run.run_id, step.index)
    if step.kind is ActionKind.READ or step.operation is not None:
        b.send(message, f"step-{step.index}-handover-{key}")
        b.set_step(replace(step, claim_message_id=b.messages[-1].message_id, claim_delivery=0))
        b.log("claim_handed_over", Actor.system("sweeper"),
              f"step {step.index + 1} ({step.action}) was in flight for {now - run.updated_at} with no outcome; "
              "a new message takes over its claim", step=step.index)
        return b.build()
    return unanswered_write(run, step, now, Actor.system("sweeper"))


def _lost_message(run: Run, now: dt.datetime) -> tuple[OutboundMessage, ...]:
    b = ChangeBuilder(run, now)
    key = f"{int(now.timestamp())}"  # a new id: the queue's duplicate detection must not drop it
    step = run.current_step()
    if run.state is RunState.AWAITING_CONSENT and not run.requests:
        b.send(OpenConsent(run.run_id), f"open-{key}")
    elif run.state is RunState.RUNNING and step is not None and step.state is StepState.PENDING:
        b.send(AttemptStep(run.run_id, step.index), f"step-{step.index}-{key}")
    elif (run.state is RunState.RUNNING and step is not None and step.state is StepState.AWAITING_CREDENTIALS
          and (granted := granted_credential(run, step.index)) is not None):
        b.send(ExecuteStep(run.run_id, step.index), f"step-{step.index}-{granted.request_id}-{key}")
    elif (run.state is RunState.AWAITING_CREDENTIALS and step is not None
          and not any(r.step_index == step.index and r.state is RequestState.PENDING for r in run.requests)):
        b.send(OpenCredentialRequest(run.run_id, step.index), f"step-{step.index}-{key}")
    return tuple(b.messages)
