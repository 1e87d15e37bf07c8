"""The messages between stages: one frozen dataclass per kind, one table that routes each to its queue,
and the JSON coding at the edge (the outbox and Service Bus carry the coded form).

A sender builds a typed message and a handler receives one, so a field that one side drops is a type
error, not a silent `None`. Message ids are built from the run, the queue and a stable key, so a message
written twice (a retried commit, the outbox relay) is dropped by the queue's duplicate detection.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from shared.core.errors import GatesError
from shared.core.model import OutboundMessage
from shared.topology import Queue


@dataclass(frozen=True)
class OpenConsent:
    """Ask the plan's approvers for consent (review mode, a plan with a write)."""

    run_id: str


@dataclass(frozen=True)
class AttemptStep:
    """Run a step with the agent's own identity."""

    run_id: str
    step: int


@dataclass(frozen=True)
class OpenCredentialRequest:
    """Ask a person for temporary credentials for a step the agent's identity may not perform. The
    claims challenge, when ARM sent one, is kept on the step, so every sender passes it on."""

    run_id: str
    step: int


@dataclass(frozen=True)
class ExecuteStep:
    """Run a step with the credentials a person granted for it."""

    run_id: str
    step: int


@dataclass(frozen=True)
class ExpireRequest:
    """A request's deadline: scheduled for it, it expires the request if nobody answered."""

    run_id: str
    request_id: str


@dataclass(frozen=True)
class RemindRequest:
    """Scheduled at the plan's fraction of a request's time: remind, and escalate where the plan says."""

    run_id: str
    request_id: str


@dataclass(frozen=True)
class RequestReminded:
    """Remind those asked who have not answered; ask the escalation group, if the request added one."""

    run_id: str
    request_id: str


@dataclass(frozen=True)
class RequestOpened:
    """Tell the people a request names that a decision waits for them."""

    run_id: str
    request_id: str


@dataclass(frozen=True)
class RequestClosed:
    """Tell every person a request asked that it is decided, expired or cancelled (once), so that
    nobody acts on a stale e-mail."""

    run_id: str
    request_id: str


@dataclass(frozen=True)
class RunEnded:
    """Tell the plan's approvers and watchers how the run ended."""

    run_id: str


StageMessage = OpenConsent | AttemptStep | OpenCredentialRequest | ExecuteStep | ExpireRequest | RequestOpened \
    | RequestClosed | RunEnded | RemindRequest | RequestReminded

# Every stage message, its queue, and the `kind` that tells apart messages sharing a queue.
ROUTES: dict[type[StageMessage], tuple[Queue, str]] = {
    OpenConsent: (Queue.CONSENT, "open_consent"),
    AttemptStep: (Queue.ATTEMPT, "attempt_step"),
    OpenCredentialRequest: (Queue.ELEVATION, "open_credential_request"),
    ExecuteStep: (Queue.EXECUTION, "execute_step"),
    ExpireRequest: (Queue.DEADLINES, "expire_request"),
    RemindRequest: (Queue.DEADLINES, "remind_request"),
    RequestOpened: (Queue.NOTIFICATIONS, "request_opened"),
    RequestClosed: (Queue.NOTIFICATIONS, "request_closed"),
    RequestReminded: (Queue.NOTIFICATIONS, "request_reminded"),
    RunEnded: (Queue.NOTIFICATIONS, "run_ended"),
}
_BY_KIND: dict[tuple[Queue, str], type[StageMessage]] = {route: kind for kind, route in ROUTES.items()}


class MalformedMessage(GatesError):
    """A stage message that cannot be read: a bug or a foreign sender, never a retryable condition."""


def queue_of(message: StageMessage) -> Queue:
    return ROUTES[type(message)][0]


def encode(message: StageMessage) -> dict[str, Any]:
    return {"kind": ROUTES[type(message)][1], **dataclasses.asdict(message)}


def decode(queue: Queue, body: Any) -> StageMessage:
    """The typed message a queue's body holds, or `MalformedMessage` saying what is wrong."""
    if not isinstance(body, dict):
        raise MalformedMessage(f"a {queue.value} message must be a JSON object")
    kinds = [kind for (q, _), kind in _BY_KIND.items() if q is queue]
    kind = _BY_KIND.get((queue, str(body.get("kind")))) or (kinds[0] if len(kinds) == 1 else None)
    if kind is None:
        raise MalformedMessage(f"a {queue.value} message has unknown kind {body.get('kind')!r}")
    values: dict[str, Any] = {}
    for field in dataclasses.fields(kind):
        value = body.get(field.name)
        expected = int if field.type in ("int", int) else str
        if not isinstance(value, expected) or isinstance(value, bool):
            raise MalformedMessage(f"{queue.value} message field {field.name!r} is missing or not {expected.__name__}")
        values[field.name] = value
    return kind(**values)


def envelope(message: StageMessage, key: str, at: dt.datetime | None = None) -> OutboundMessage:
    """The coded form that the outbox stores and the bus sends; `key` makes the id stable per run."""
    queue = queue_of(message)
    return OutboundMessage(queue=queue.value, message_id=f"{message.run_id}:{queue.value}:{key}",
                           body=encode(message), correlation_id=message.run_id, scheduled_for=at)
