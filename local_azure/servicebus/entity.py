"""One queue's semantics, free of AMQP: peek-lock, delivery count, dead-lettering, scheduling, deferral.

Time is passed in (`now`, seconds since the epoch) so the rules are plain functions of state and clock.
`delivery_count` is what travels in the AMQP header: the number of *earlier* delivery attempts, 0 on the
first delivery, as the real service sends it (the Python SDK reports it unchanged; the .NET SDK, and so the
Functions host, add one). A message has been delivered `delivery_count + 1` times when its lock ends;
at `max_delivery_count` attempts it moves to the dead-letter subqueue.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

import proton

from .config import QueueSettings

DEAD_LETTER_SUFFIX = "/$DeadLetterQueue"
MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"
TTL_EXPIRED = "TTLExpiredException"


class State(Enum):
    SCHEDULED = "scheduled"
    AVAILABLE = "available"
    LOCKED = "locked"
    DEFERRED = "deferred"


class LockLostError(Exception):
    """The lock token is unknown or its lock has expired (`com.microsoft:message-lock-lost`)."""


class MessageNotFoundError(Exception):
    """No such sequence number in this entity (`com.microsoft:message-not-found`)."""


@dataclass
class StoredMessage:
    sequence_number: int
    message: proton.Message
    enqueued_at: float
    expires_at: float
    state: State
    delivery_count: int = 0
    lock_token: uuid.UUID | None = None
    locked_until: float = 0.0
    dead_letter_source: str | None = None


@dataclass
class Entity:
    """A queue or its dead-letter subqueue. Messages live in memory only."""

    path: str
    settings: QueueSettings
    dead_letter: Entity | None = None
    sequence: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    _available: list[int] = field(default_factory=list)  # heap of sequence numbers, stale entries skipped
    _locks: dict[uuid.UUID, int] = field(default_factory=dict)
    _seen_message_ids: dict[str, float] = field(default_factory=dict)
    # No lock, schedule or expiry falls due before this moment, so `sweep` can skip its scan until then.
    _wake_at: float = 0.0

    @classmethod
    def queue(cls, settings: QueueSettings) -> Entity:
        dead_letter = cls(path=settings.name + DEAD_LETTER_SUFFIX, settings=settings)
        return cls(path=settings.name, settings=settings, dead_letter=dead_letter)

    @property
    def is_dead_letter_queue(self) -> bool:
        return self.dead_letter is None

    # ---- arrival -------------------------------------------------------------------------------
    def is_duplicate(self, message_id: str | None, now: float) -> bool:
        """Remember the id; True when it was already seen inside the detection window."""
        if not self.settings.requires_duplicate_detection or message_id is None or self.is_dead_letter_queue:
            return False
        window = self.settings.duplicate_detection_window_seconds
        # Ids are remembered in the order they arrived, so the expired ones are the first: drop those only
        # (a scan of every id remembered made each arrival cost as much as the window's traffic).
        while self._seen_message_ids:
            old_id, seen_at = next(iter(self._seen_message_ids.items()))
            if seen_at + window > now:
                break
            del self._seen_message_ids[old_id]
        if message_id in self._seen_message_ids:
            return True
        self._seen_message_ids[message_id] = now
        return False

    def enqueue(self, message: proton.Message, now: float, scheduled_at: float | None = None) -> StoredMessage:
        visible_at = scheduled_at if scheduled_at is not None and scheduled_at > now else now
        ttl = message.ttl if message.ttl else self.settings.default_ttl_seconds
        ttl = min(ttl, self.settings.default_ttl_seconds)
        state = State.SCHEDULED if visible_at > now else State.AVAILABLE
        stored = StoredMessage(
            sequence_number=next(self.sequence),
            message=message,
            enqueued_at=visible_at,
            expires_at=visible_at + ttl,
            state=state,
        )
        self.messages[stored.sequence_number] = stored
        if state is State.AVAILABLE:
            heapq.heappush(self._available, stored.sequence_number)
        self._wake_at = min(self._wake_at, visible_at if state is State.SCHEDULED else stored.expires_at)
        return stored

    def adopt(self, stored: StoredMessage) -> None:
        """Take a message dead-lettered by the parent queue, keeping its sequence number."""
        stored.state = State.AVAILABLE
        stored.lock_token = None
        stored.expires_at = float("inf")  # the dead-letter queue never expires messages
        self.messages[stored.sequence_number] = stored
        heapq.heappush(self._available, stored.sequence_number)

    # ---- receiving -----------------------------------------------------------------------------
    def lock_next(self, now: float) -> StoredMessage | None:
        stored = self._pop_available(now)
        if stored is None:
            return None
        stored.state = State.LOCKED
        self._lock(stored, now)
        return stored

    def take_next(self, now: float) -> StoredMessage | None:
        """Receive-and-delete: the message leaves the queue as it is handed out."""
        stored = self._pop_available(now)
        if stored is not None:
            del self.messages[stored.sequence_number]
        return stored

    def _pop_available(self, now: float) -> StoredMessage | None:
        self.sweep(now)
        while self._available:
            sequence_number = heapq.heappop(self._available)
            stored = self.messages.get(sequence_number)
            if stored is not None and stored.state is State.AVAILABLE:
                return stored
        return None

    def _lock(self, stored: StoredMessage, now: float) -> None:
        stored.lock_token = uuid.uuid4()
        stored.locked_until = now + self.settings.lock_duration_seconds
        self._locks[stored.lock_token] = stored.sequence_number
        self._wake_at = min(self._wake_at, stored.locked_until)

    # ---- settlement ----------------------------------------------------------------------------
    def locked(self, lock_token: uuid.UUID, now: float) -> StoredMessage:
        sequence_number = self._locks.get(lock_token)
        stored = self.messages.get(sequence_number) if sequence_number is not None else None
        if stored is None or stored.state is not State.LOCKED or stored.lock_token != lock_token:
            raise LockLostError("The lock supplied is invalid. Either the lock expired, or the message has "
                                "already been removed from the queue.")
        if stored.locked_until <= now:
            self._end_delivery_attempt(stored, now)
            raise LockLostError("The lock supplied has expired.")
        return stored

    def complete(self, lock_token: uuid.UUID, now: float) -> None:
        stored = self.locked(lock_token, now)
        self._unlock(stored)
        del self.messages[stored.sequence_number]

    def abandon(self, lock_token: uuid.UUID, now: float, properties: dict[str, object] | None = None) -> None:
        stored = self.locked(lock_token, now)
        self._modify(stored, properties)
        self._end_delivery_attempt(stored, now)

    def release(self, lock_token: uuid.UUID, now: float) -> None:
        """The client gave back a delivery it never handed to the application: no attempt is counted."""
        stored = self.locked(lock_token, now)
        self._unlock(stored)
        self._make_available(stored)

    def defer(self, lock_token: uuid.UUID, now: float, properties: dict[str, object] | None = None) -> None:
        stored = self.locked(lock_token, now)
        self._modify(stored, properties)
        self._unlock(stored)
        stored.state = State.DEFERRED

    def dead_letter_locked(self, lock_token: uuid.UUID, now: float, reason: str | None, description: str | None,
                           properties: dict[str, object] | None = None) -> None:
        stored = self.locked(lock_token, now)
        self._modify(stored, properties)
        self._move_to_dead_letter(stored, reason, description)

    def renew(self, lock_token: uuid.UUID, now: float) -> float:
        stored = self.locked(lock_token, now)
        stored.locked_until = now + self.settings.lock_duration_seconds
        return stored.locked_until

    def _end_delivery_attempt(self, stored: StoredMessage, now: float) -> None:
        """Abandon or lock expiry: one more delivery attempt is spent."""
        self._unlock(stored)
        attempts = stored.delivery_count + 1
        if not self.is_dead_letter_queue and attempts >= self.settings.max_delivery_count:
            stored.delivery_count = attempts
            self._move_to_dead_letter(
                stored, MAX_DELIVERY_COUNT_EXCEEDED,
                f"Message could not be consumed after {self.settings.max_delivery_count} delivery attempts.")
            return
        stored.delivery_count = attempts
        self._make_available(stored)

    def _unlock(self, stored: StoredMessage) -> None:
        if stored.lock_token is not None:
            self._locks.pop(stored.lock_token, None)
        stored.lock_token = None
        stored.locked_until = 0.0

    def _make_available(self, stored: StoredMessage) -> None:
        stored.state = State.AVAILABLE
        heapq.heappush(self._available, stored.sequence_number)

    @staticmethod
    def _modify(stored: StoredMessage, properties: dict[str, object] | None) -> None:
        if properties:
            stored.message.properties = {**(stored.message.properties or {}), **properties}

    def _move_to_dead_letter(self, stored: StoredMessage, reason: str | None, description: str | None) -> None:
        self._unlock(stored)
        self.messages.pop(stored.sequence_number, None)
        if self.dead_letter is None:  # dead-lettering from the dead-letter queue itself just keeps it there
            self.adopt(stored)
            return
        extra: dict[str, object] = {}
        if reason is not None:
            extra["DeadLetterReason"] = reason
        if description is not None:
            extra["DeadLetterErrorDescription"] = description
        self._modify(stored, extra)
        stored.dead_letter_source = self.path
        self.dead_letter.adopt(stored)

    # ---- time ----------------------------------------------------------------------------------
    def sweep(self, now: float) -> bool:
        """Apply the clock: ended locks, due scheduled messages, expired messages. True when anything changed."""
        if now < self._wake_at:
            return False
        changed = False
        for stored in list(self.messages.values()):
            if stored.state is State.LOCKED and stored.locked_until <= now:
                self._end_delivery_attempt(stored, now)
                changed = True
            elif stored.state is State.SCHEDULED and stored.enqueued_at <= now:
                self._make_available(stored)
                changed = True
            if stored.state in (State.AVAILABLE, State.DEFERRED) and stored.expires_at <= now:
                self._expire(stored)
                changed = True
        self._wake_at = self.next_deadline() or float("inf")
        return changed

    def _expire(self, stored: StoredMessage) -> None:
        if self.settings.dead_lettering_on_message_expiration and self.dead_letter is not None:
            self._move_to_dead_letter(stored, TTL_EXPIRED, "The message expired and was dead lettered.")
        else:
            self.messages.pop(stored.sequence_number, None)

    def next_deadline(self) -> float | None:
        """The earliest moment at which `sweep` would change something."""
        times = [
            min(stored.locked_until, stored.expires_at) if stored.state is State.LOCKED
            else stored.enqueued_at if stored.state is State.SCHEDULED
            else stored.expires_at
            for stored in self.messages.values()
        ]
        finite = [t for t in times if t != float("inf")]
        return min(finite) if finite else None

    # ---- management ----------------------------------------------------------------------------
    def cancel_scheduled(self, sequence_numbers: list[int]) -> None:
        for sequence_number in sequence_numbers:
            stored = self.messages.get(sequence_number)
            if stored is None or stored.state is not State.SCHEDULED:
                raise MessageNotFoundError(f"The scheduled message with sequence number {sequence_number} "
                                           "was not found.")
        for sequence_number in sequence_numbers:
            del self.messages[sequence_number]

    def peek(self, from_sequence_number: int, count: int, now: float) -> list[StoredMessage]:
        self.sweep(now)
        found = sorted(s for s in self.messages if s >= from_sequence_number)
        return [self.messages[s] for s in found[:count]]

    def lock_deferred(self, sequence_numbers: list[int], now: float, *, delete: bool) -> list[StoredMessage]:
        self.sweep(now)
        found: list[StoredMessage] = []
        for sequence_number in sequence_numbers:
            stored = self.messages.get(sequence_number)
            if stored is None or stored.state is not State.DEFERRED:
                raise MessageNotFoundError(f"The deferred message with sequence number {sequence_number} "
                                           "was not found.")
            found.append(stored)
        for stored in found:
            if delete:
                del self.messages[stored.sequence_number]
            else:
                stored.state = State.LOCKED
                self._lock(stored, now)
        return found

    def depth(self) -> int:
        """Messages in the entity, whatever their state (active, locked, scheduled, deferred)."""
        return len(self.messages)

    def count(self, state: State) -> int:
        return sum(1 for stored in self.messages.values() if stored.state is state)
