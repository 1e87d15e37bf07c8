"""Stage messages: each kind goes to its queue and comes back as the same typed message; anything else
is refused with the reason."""

from __future__ import annotations

import pytest

from shared.core.messages import (
    ROUTES,
    AttemptStep,
    ExecuteStep,
    ExpireRequest,
    MalformedMessage,
    OpenConsent,
    OpenCredentialRequest,
    RemindRequest,
    RequestClosed,
    RequestOpened,
    RequestReminded,
    RunEnded,
    StageMessage,
    decode,
    encode,
    envelope,
    queue_of,
)
from shared.topology import Queue

EXAMPLES: list[StageMessage] = [
    OpenConsent("r1"), AttemptStep("r1", 0), OpenCredentialRequest("r1", 1), ExecuteStep("r1", 1),
    ExpireRequest("r1", "q1"), RequestOpened("r1", "q1"), RequestClosed("r1", "q1"), RunEnded("r1"),
    RemindRequest("r1", "q1"), RequestReminded("r1", "q1"),
]


def test_every_message_kind_has_an_example() -> None:
    assert {type(m) for m in EXAMPLES} == set(ROUTES)


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_a_message_comes_back_from_its_queue_as_itself(message: StageMessage) -> None:
    assert decode(queue_of(message), encode(message)) == message


def test_messages_go_to_the_queue_of_their_stage() -> None:
    assert [queue_of(m) for m in EXAMPLES] == [
        Queue.CONSENT, Queue.ATTEMPT, Queue.ELEVATION, Queue.EXECUTION, Queue.DEADLINES, Queue.NOTIFICATIONS,
        Queue.NOTIFICATIONS, Queue.NOTIFICATIONS, Queue.DEADLINES, Queue.NOTIFICATIONS]


def test_an_envelope_id_is_stable_for_the_same_run_queue_and_key() -> None:
    first, again = envelope(AttemptStep("r1", 0), "step-0"), envelope(AttemptStep("r1", 0), "step-0")
    assert first.message_id == again.message_id == "r1:attempt:step-0"
    assert first.queue == "attempt"
    assert first.correlation_id == "r1"


@pytest.mark.parametrize(("queue", "body", "reason"), [
    (Queue.ATTEMPT, ["not", "an", "object"], "JSON object"),
    (Queue.ATTEMPT, {"run_id": "r1"}, "'step'"),
    (Queue.ATTEMPT, {"run_id": "r1", "step": "0"}, "'step'"),
    (Queue.ATTEMPT, {"run_id": "r1", "step": True}, "'step'"),
    (Queue.CONSENT, {"run_id": 7}, "'run_id'"),
    (Queue.NOTIFICATIONS, {"run_id": "r1", "kind": "gossip"}, "unknown kind"),
    (Queue.NOTIFICATIONS, {"run_id": "r1", "kind": "request_opened"}, "'request_id'"),
])
def test_a_malformed_message_is_refused_with_the_reason(queue: Queue, body: object, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        decode(queue, body)
