"""A `Change` is what one decision does to a run: the new run, the audit lines to append and the
messages that must follow. The shell writes all three in one transaction and sends after.

Decisions build a change with `ChangeBuilder`, which numbers audit lines, gives messages stable ids and
checks every state it writes against the state machines in `transitions.py`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from shared.core.messages import RequestClosed, RunEnded, StageMessage, envelope
from shared.core.model import Actor, AuditEvent, OutboundMessage, Request, RequestState, Run, Step, StepState
from shared.core.transitions import RunEvent, check_request, check_step, next_run_state


@dataclass(frozen=True)
class Change:
    run: Run
    audit: tuple[AuditEvent, ...] = ()
    messages: tuple[OutboundMessage, ...] = ()
    # The change moves the run from an open state to a terminal one: the store removes what marks the
    # run as taking repeats (see `RunStore.record_join_if_open`) in the same transaction.
    ends_run: bool = False


class ChangeBuilder:
    """Accumulates one change: state edits, audit lines with their sequence numbers, messages."""

    def __init__(self, run: Run, now: dt.datetime) -> None:
        self.run = run
        self.now = now
        self._was_open = not run.state.is_terminal
        self._ended = run.ended_time  # taken before the change: a later change must not move it
        self.audit: list[AuditEvent] = []
        self.messages: list[OutboundMessage] = []

    def log(self, event: str, actor: Actor, summary: str, **details: Any) -> None:
        seq = self.run.audit_seq + len(self.audit) + 1
        self.audit.append(AuditEvent(seq, event, self.now, actor, summary, details))

    def send(self, message: StageMessage, key: str, at: dt.datetime | None = None) -> None:
        self.messages.append(envelope(message, key, at))

    def move(self, event: RunEvent) -> None:
        self.run = replace(self.run, state=next_run_state(self.run.state, event))

    def set_step(self, step: Step) -> None:
        check_step(self.run.steps[step.index].state, step.state)
        steps = list(self.run.steps)
        steps[step.index] = step
        self.run = replace(self.run, steps=tuple(steps))

    def set_request(self, request: Request) -> None:
        current = self.run.request(request.request_id)
        check_request(current.state if current else None, request.state)
        if current is None:
            self.run = replace(self.run, requests=(*self.run.requests, request))
        else:
            self.run = replace(self.run, requests=tuple(
                request if r.request_id == request.request_id else r for r in self.run.requests))

    def end(self, event: RunEvent, actor: Actor, reason: str) -> None:
        """Move to a terminal state: nothing later runs, nothing pending stays open, nothing sealed stays."""
        self.move(event)
        for step in self.run.steps:
            if step.state in (StepState.PENDING, StepState.AWAITING_CREDENTIALS):
                self.set_step(replace(step, state=StepState.SKIPPED))
        for request in self.run.requests:
            if request.state is RequestState.PENDING:
                self.set_request(replace(request, state=RequestState.CANCELLED, reason=reason))
                self.send(RequestClosed(self.run.run_id, request.request_id), f"closed-{request.request_id}")
            if request.sealed_assertion is not None:
                self.set_request(replace(self.run.request(request.request_id) or request, sealed_assertion=None))
                self.log("credential_revoked", Actor.system(), "the granted credential was discarded unused",
                         request_id=request.request_id)
        self.run = replace(self.run, outcome=reason, pause=None)  # an ended run waits for nothing
        self.log("run_ended", actor, f"run {self.run.state.value}: {reason}", state=self.run.state.value)
        self.send(RunEnded(self.run.run_id), f"ended-{self.run.state.value}")

    def build(self) -> Change:
        ended_at = self._ended or (self.now if self.run.state.is_terminal else None)
        run = replace(self.run, updated_at=self.now, audit_seq=self.run.audit_seq + len(self.audit), ended_at=ended_at)
        if self.messages:  # they become the outbox; a change that sends nothing keeps the one before
            run = replace(run, outbox=tuple(self.messages), last_trigger=None)
        return Change(run, tuple(self.audit), tuple(self.messages),
                      ends_run=self._was_open and run.state.is_terminal)


def then(first: Change, second: Change | None) -> Change:
    """Two decisions written as one change: `second` was decided on the run as `first` left it."""
    if second is None:
        return first
    messages = first.messages + second.messages
    run = replace(second.run, outbox=messages) if first.messages and second.messages else second.run
    return Change(run, first.audit + second.audit, messages, ends_run=first.ends_run or second.ends_run)


def step_of(run: Run, index: int) -> Step | None:
    return run.steps[index] if 0 <= index < len(run.steps) else None
