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
    def __init__(self, client: ServiceBusClient) -> None:
        self._client = client
        self._senders: dict[str, ServiceBusSender] = {}
        self._lock = threading.Lock()

    def send(self, messages: Sequence[OutboundMessage]) -> None:
        by_queue: dict[str, list[OutboundMessage]] = defaultdict(list)
        for message in messages:
            by_queue[message.queue].append(message)
        # One lock for all senders: the SDK's senders are not thread-safe and sends are short.
        with self._lock:
            for queue, batch in by_queue.items():
                sender = self._senders.get(queue)
                if sender is None:
                    sender = self._senders[queue] = self._client.get_queue_sender(queue)
                try:
                    sender.send_messages([to_servicebus_message(m) for m in batch])
                except MessageSizeExceededError as error:
                    # The link is fine; the message is not: the caller decides (the intake answers 413).
                    raise MessageTooLarge(str(error)) from None
                except Exception:
                    # A broken link is rebuilt on the next send rather than reused.
                    self._senders.pop(queue, None)
                    sender.close()
                    raise

    def close(self) -> None:
        with self._lock:
            for sender in self._senders.values():
                sender.close()
            self._senders.clear()
            self._client.close()
