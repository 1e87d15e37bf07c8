"""Outbox messages onto Service Bus queues with `azure-servicebus`.

Message ids are deterministic, so a message re-sent after a crash is dropped by the queue's duplicate
detection, and consumers check the run's state anyway.
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Sequence

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSender
from azure.servicebus.exceptions import MessageSizeExceededError

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
    """Sends on idle senders of the queue, opening another when every one is busy: a sender is not
    thread-safe, and one lock around all sends made every caller wait for every other's acknowledgement
    (the HTTP intake, whose requests each send one alert, ran one send at a time)."""

    def __init__(self, client: ServiceBusClient) -> None:
        self._client = client
        self._idle: dict[str, list[ServiceBusSender]] = defaultdict(list)
        self._lock = threading.Lock()

    def send(self, messages: Sequence[OutboundMessage]) -> None:
        by_queue: dict[str, list[OutboundMessage]] = defaultdict(list)
        for message in messages:
            by_queue[message.queue].append(message)
        for queue, batch in by_queue.items():
            with self._lock:  # the client's own bookkeeping of its senders is not thread-safe either
                idle = self._idle[queue]
                sender = idle.pop() if idle else self._client.get_queue_sender(queue)
            try:
                sender.send_messages([to_servicebus_message(m) for m in batch])
            except MessageSizeExceededError as error:
                self._release(queue, sender)  # the link is fine; the message is not: the caller decides (413)
                raise MessageTooLarge(str(error)) from None
            except Exception:
                sender.close()  # a broken link is rebuilt on a later send rather than reused
                raise
            self._release(queue, sender)

    def _release(self, queue: str, sender: ServiceBusSender) -> None:
        with self._lock:
            self._idle[queue].append(sender)

    def close(self) -> None:
        with self._lock:
            for senders in self._idle.values():
                for sender in senders:
                    sender.close()
            self._idle.clear()
            self._client.close()
