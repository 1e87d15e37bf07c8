"""The queue rules of the Service Bus stand-in, without a network: the clock is a parameter."""

from __future__ import annotations

import uuid

import proton
import pytest

from local_azure.servicebus.config import QueueSettings, emulator_config, load_queues, parse_duration
from local_azure.servicebus.entity import Entity, LockLostError, MessageNotFoundError, State

T0 = 1_000_000.0


def queue(**settings: object) -> Entity:
    return Entity.queue(QueueSettings("q", **settings))  # type: ignore[arg-type]


def message(body: str = "m", ttl: float = 0.0) -> proton.Message:
    return proton.Message(body=body, ttl=ttl)


def test_lock_hides_the_message_from_other_receivers() -> None:
    q = queue()
    q.enqueue(message(), T0)
    assert q.lock_next(T0) is not None
    assert q.lock_next(T0) is None


def test_abandon_counts_an_attempt_and_keeps_the_sequence_order() -> None:
    q = queue()
    first = q.enqueue(message("a"), T0)
    q.enqueue(message("b"), T0)
    locked = q.lock_next(T0)
    assert locked is first
    assert locked.lock_token is not None
    q.abandon(locked.lock_token, T0)
    again = q.lock_next(T0)
    assert again is first
    assert again.delivery_count == 1


def test_release_gives_the_message_back_without_counting_an_attempt() -> None:
    q = queue()
    q.enqueue(message(), T0)
    locked = q.lock_next(T0)
    assert locked is not None
    assert locked.lock_token is not None
    q.release(locked.lock_token, T0)
    assert q.lock_next(T0).delivery_count == 0  # type: ignore[union-attr]


def test_the_last_allowed_attempt_moves_the_message_to_the_dead_letter_queue() -> None:
    q = queue(max_delivery_count=2)
    q.enqueue(message(), T0)
    for _ in range(2):
        locked = q.lock_next(T0)
        assert locked is not None
        assert locked.lock_token is not None
        q.abandon(locked.lock_token, T0)
    assert q.depth() == 0
    assert q.dead_letter is not None
    dead = q.dead_letter.lock_next(T0)
    assert dead is not None
    assert dead.message.properties["DeadLetterReason"] == "MaxDeliveryCountExceeded"
    assert dead.dead_letter_source == "q"


def test_an_expired_lock_counts_as_an_attempt() -> None:
    q = queue(lock_duration_seconds=30)
    q.enqueue(message(), T0)
    q.lock_next(T0)
    assert q.lock_next(T0 + 29) is None
    again = q.lock_next(T0 + 30)
    assert again is not None
    assert again.delivery_count == 1


def test_settling_with_an_expired_lock_is_lock_lost() -> None:
    q = queue(lock_duration_seconds=30)
    q.enqueue(message(), T0)
    locked = q.lock_next(T0)
    assert locked is not None
    assert locked.lock_token is not None
    with pytest.raises(LockLostError):
        q.complete(locked.lock_token, T0 + 31)


def test_settling_with_an_unknown_token_is_lock_lost() -> None:
    with pytest.raises(LockLostError):
        queue().complete(uuid.uuid4(), T0)


def test_renewal_moves_the_lock_end_from_now() -> None:
    q = queue(lock_duration_seconds=30)
    q.enqueue(message(), T0)
    locked = q.lock_next(T0)
    assert locked is not None
    assert locked.lock_token is not None
    assert q.renew(locked.lock_token, T0 + 20) == T0 + 50
    q.complete(locked.lock_token, T0 + 45)
    assert q.depth() == 0


def test_scheduled_message_becomes_available_at_its_time_with_that_enqueued_time() -> None:
    q = queue()
    q.enqueue(message(), T0, scheduled_at=T0 + 60)
    assert q.lock_next(T0 + 59) is None
    due = q.lock_next(T0 + 60)
    assert due is not None
    assert due.enqueued_at == T0 + 60


def test_cancelling_a_message_that_is_not_scheduled_is_message_not_found() -> None:
    q = queue()
    stored = q.enqueue(message(), T0)
    with pytest.raises(MessageNotFoundError):
        q.cancel_scheduled([stored.sequence_number])


def test_time_to_live_is_capped_by_the_queue_default() -> None:
    q = queue(default_ttl_seconds=60)
    assert q.enqueue(message(ttl=3600), T0).expires_at == T0 + 60


def test_expiry_dead_letters_only_when_the_queue_says_so() -> None:
    keeping, dropping = queue(dead_lettering_on_message_expiration=True), queue()
    for q in (keeping, dropping):
        q.enqueue(message(ttl=5), T0)
        q.sweep(T0 + 5)
        assert q.depth() == 0
    assert keeping.dead_letter is not None
    assert dropping.dead_letter is not None
    assert (keeping.dead_letter.depth(), dropping.dead_letter.depth()) == (1, 0)


def test_a_locked_message_does_not_expire_until_its_lock_ends() -> None:
    q = queue(dead_lettering_on_message_expiration=True, lock_duration_seconds=30)
    q.enqueue(message(ttl=5), T0)
    q.lock_next(T0)
    q.sweep(T0 + 10)
    assert q.count(State.LOCKED) == 1
    q.sweep(T0 + 30)
    assert q.depth() == 0


def test_only_the_ids_older_than_the_window_are_forgotten() -> None:
    q = queue(requires_duplicate_detection=True, duplicate_detection_window_seconds=60)
    for n, at in enumerate((T0, T0 + 20, T0 + 40)):
        assert not q.is_duplicate(f"m{n}", at)
    assert not q.is_duplicate("m0", T0 + 61)
    assert q.is_duplicate("m1", T0 + 61)
    assert q.is_duplicate("m2", T0 + 99)
    assert not q.is_duplicate("m1", T0 + 99)


def test_duplicate_ids_are_forgotten_after_the_window() -> None:
    q = queue(requires_duplicate_detection=True, duplicate_detection_window_seconds=60)
    assert not q.is_duplicate("a", T0)
    assert q.is_duplicate("a", T0 + 59)
    assert not q.is_duplicate("a", T0 + 61)


def test_deferred_message_is_only_reachable_by_sequence_number() -> None:
    q = queue()
    stored = q.enqueue(message(), T0)
    locked = q.lock_next(T0)
    assert locked is not None
    assert locked.lock_token is not None
    q.defer(locked.lock_token, T0)
    assert q.lock_next(T0) is None
    [again] = q.lock_deferred([stored.sequence_number], T0, delete=False)
    assert again.state is State.LOCKED


@pytest.mark.parametrize(("text", "seconds"), [
    ("PT1M", 60), ("PT5M", 300), ("PT10M", 600), ("PT1H", 3600), ("P14D", 14 * 86400), ("PT0.5S", 0.5),
    ("P1DT2H3M4S", 86400 + 7200 + 180 + 4),
])
def test_iso_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "1M", "PT1X", "P1Y"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_duration(text)


def test_emulator_config_round_trips() -> None:
    queues = [QueueSettings("a", max_delivery_count=3, lock_duration_seconds=300, requires_duplicate_detection=True,
                            dead_lettering_on_message_expiration=True, default_ttl_seconds=3600)]
    assert load_queues(emulator_config(queues)) == queues


def test_a_queue_declared_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        load_queues([QueueSettings("a"), {"Name": "A"}])
