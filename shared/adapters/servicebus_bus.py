"""Outbox messages onto Service Bus queues with `azure-servicebus`.

Message ids are deterministic, so a message re-sent after a crash is dropped by the queue's duplicate
detection, and consumers check the run's state anyway.
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSender
from azure.servicebus.exceptions import MessageSizeExceededError

from shared.adapters.group_commit import GroupCommit
from shared.core.codec import message_body_text
from shared.core.model import OutboundMessage
from shared.ports import MessageTooLarge


def to_servicebus_message(message: OutboundMessage) -> ServiceBusMessage:
    properties: dict[str | bytes, int | float | bytes | str | uuid.UUID] = {"run_id": message.correlation_id}
    properties.update(message.properties.items())
    return ServiceBusMessage(
        message_body_text(message.body),
        message_id=message.message_id[:128],
        correlation_id=message.correlation_id,
        content_type="application/json",
        application_properties=properties,
        scheduled_enqueue_time_utc=message.scheduled_for,
    )


class ServiceBusMessageBus:
    """Sends what concurrent callers send to one queue together: while one send is on the wire, what the
    others send waits and goes in the next, as one batch, sent by one of them (group commit); each caller
    returns once the queue has taken its messages, or raises what the send of them raised. One sender per
    queue, used by one thread at a time (a sender is not thread-safe): a lock around each send instead made
    every caller wait for every other's acknowledgement in turn (the HTTP intake sends an alert a request)."""

    def __init__(self, client: ServiceBusClient) -> None:
        self._client = client
        self._lanes: dict[str, _Lane] = {}
        self._lock = threading.Lock()

    def send(self, messages: Sequence[OutboundMessage]) -> None:
        by_queue: dict[str, list[OutboundMessage]] = defaultdict(list)
        for message in messages:
            by_queue[message.queue].append(message)
        for queue, batch in by_queue.items():
            with self._lock:
                lane = self._lanes.get(queue)
                if lane is None:
                    lane = self._lanes[queue] = _Lane(queue, self._open_sender)
            lane.send(batch)

    def _open_sender(self, queue: str) -> ServiceBusSender:
        with self._lock:  # the client's bookkeeping of its senders is not thread-safe either
            return self._client.get_queue_sender(queue)

    def close(self) -> None:
        with self._lock:
            for lane in self._lanes.values():
                lane.close()
            self._lanes.clear()
            self._client.close()


class _Lane:
    """One queue's sender and what callers wait to send on it."""

    def __init__(self, queue: str, open_sender: Callable[[str], ServiceBusSender]) -> None:
        self._open_sender = open_sender
        self._queue = queue
        self._sender: ServiceBusSender | None = None
        self._together: GroupCommit[list[OutboundMessage], None] = GroupCommit(self._send_together)

    def send(self, messages: list[OutboundMessage]) -> None:
        self._together.submit(messages)

    def _send_together(self, taken: list[list[OutboundMessage]]) -> list[BaseException | None]:
        try:
            self._send([m for messages in taken for m in messages])
        except MessageTooLarge as too_large:
            if len(taken) == 1:
                return [too_large]
            return [self._send_alone(messages) for messages in taken]  # too large together: each on its own
        return [None] * len(taken)

    def _send_alone(self, messages: list[OutboundMessage]) -> BaseException | None:
        try:
            self._send(messages)
        except Exception as error:  # handed to the caller whose messages these are
            return error
        return None

    def _send(self, messages: list[OutboundMessage]) -> None:
        if self._sender is None:
            self._sender = self._open_sender(self._queue)
        try:
            self._sender.send_messages([to_servicebus_message(m) for m in messages])
        except MessageSizeExceededError as error:
            # The link is fine; the message is not: the caller decides (the intake answers 413).
            raise MessageTooLarge(str(error)) from None
        except Exception:
            # A broken link is rebuilt on the next send rather than reused.
            sender, self._sender = self._sender, None
            sender.close()
            raise

    def close(self) -> None:
        if self._sender is not None:
            self._sender.close()
            self._sender = None
