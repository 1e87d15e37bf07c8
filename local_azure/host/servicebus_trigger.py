"""Service Bus queue triggers: peek-lock receivers through `azure-servicebus`, as the Functions extension runs them.

`host.json` `extensions.serviceBus` is honoured: `maxConcurrentCalls` worker threads per function
(each with its own receiver, since a receiver is not thread-safe), `prefetchCount`,
`autoCompleteMessages` (complete after success) and `maxAutoLockRenewalDuration` (the SDK's
`AutoLockRenewer`). A failed invocation abandons the message, so the broker redelivers it with a
higher delivery count and dead-letters it after the queue's max delivery count.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from azure.functions.servicebus import ServiceBusMessage as FunctionsServiceBusMessage
from azure.servicebus import (
    AutoLockRenewer,
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceivedMessage,
    ServiceBusReceiveMode,
    ServiceBusSender,
)
from azure.servicebus.amqp import AmqpMessageBodyType

from local_azure.host.discovery import Binding
from local_azure.host.invocation import Invoker
from local_azure.host.settings import ServiceBusOptions

LOG = logging.getLogger("local_azure.host")
RECEIVE_WAIT_SECONDS = 1.0  # bounds how long stop() waits for a receiver to notice
RECONNECT_DELAY_SECONDS = 1.0

ConnectionLookup = Callable[[str], str]


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _body_bytes(message: ServiceBusReceivedMessage) -> bytes:
    if message.body_type == AmqpMessageBodyType.DATA:
        return b"".join(message.body)
    value = message.body
    if isinstance(value, bytes):
        return value
    return (value if isinstance(value, str) else json.dumps(value, default=str)).encode()


def to_functions_message(message: ServiceBusReceivedMessage) -> FunctionsServiceBusMessage:
    """The `func.ServiceBusMessage` the Python worker builds from the runtime's trigger data.

    The runtime is .NET, whose SDK reports the AMQP header's delivery count plus one (1 on the first
    delivery); the Python SDK reports the header unchanged (0 on the first), so one is added here.
    """
    delivery_count = (message.delivery_count or 0) + 1
    properties = {str(_text(key)): _text(value) for key, value in (message.application_properties or {}).items()}
    metadata: dict[str, Any] = {
        "MessageId": message.message_id,
        "DeliveryCount": delivery_count,
        "SequenceNumber": message.sequence_number,
        "EnqueuedTimeUtc": message.enqueued_time_utc.isoformat() if message.enqueued_time_utc else None,
        "ExpiresAtUtc": message.expires_at_utc.isoformat() if message.expires_at_utc else None,
        "LockToken": str(message.lock_token),
        "ContentType": message.content_type,
        "CorrelationId": message.correlation_id,
        "Subject": message.subject,
        "Label": message.subject,
        "To": message.to,
        "ReplyTo": message.reply_to,
        "SessionId": message.session_id,
        "ApplicationProperties": properties,
        "UserProperties": properties,
    }
    ttl = message.time_to_live
    return FunctionsServiceBusMessage(
        body=_body_bytes(message),
        trigger_metadata=metadata,
        application_properties=properties,
        content_type=message.content_type,
        correlation_id=message.correlation_id,
        dead_letter_error_description=message.dead_letter_error_description,
        dead_letter_reason=message.dead_letter_reason,
        dead_letter_source=message.dead_letter_source,
        delivery_count=delivery_count,
        enqueued_sequence_number=message.enqueued_sequence_number,
        enqueued_time_utc=message.enqueued_time_utc,
        expires_at_utc=message.expires_at_utc,
        label=message.subject,
        locked_until=message.locked_until_utc,
        lock_token=str(message.lock_token),
        message_id=str(message.message_id),
        partition_key=message.partition_key,
        reply_to=message.reply_to,
        reply_to_session_id=message.reply_to_session_id,
        scheduled_enqueue_time_utc=message.scheduled_enqueue_time_utc,
        sequence_number=message.sequence_number,
        session_id=message.session_id,
        state=int(message.state) if message.state is not None else None,
        subject=message.subject,
        time_to_live=ttl if isinstance(ttl, dt.timedelta) or ttl is None else dt.timedelta(seconds=float(ttl)),
        to=message.to,
        transaction_partition_key=None,
        user_properties=properties,
    )


class ServiceBusListener:
    def __init__(self, invoker: Invoker, connection_string: str, options: ServiceBusOptions,
                 stopping: threading.Event) -> None:
        self._invoker = invoker
        self._connection_string = connection_string
        self._options = options
        self._stopping = stopping
        self._renewer = AutoLockRenewer(max_lock_renewal_duration=options.max_auto_lock_renewal_seconds,
                                        max_workers=max(4, options.max_concurrent_calls))
        self._threads = [
            threading.Thread(target=self._work, name=f"sb-{invoker.spec.name}-{index}", daemon=True)
            for index in range(options.max_concurrent_calls)
        ]

    @property
    def queue_name(self) -> str:
        return self._invoker.spec.queue_name

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)
        self._renewer.close()

    def _work(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                with ServiceBusClient.from_connection_string(self._connection_string, retry_total=1) as client, \
                        client.get_queue_receiver(self.queue_name, receive_mode=ServiceBusReceiveMode.PEEK_LOCK,
                                                  prefetch_count=self._options.prefetch_count) as receiver:
                    failures = 0
                    while not self._stopping.is_set():
                        for message in receiver.receive_messages(max_message_count=1,
                                                                 max_wait_time=RECEIVE_WAIT_SECONDS):
                            self._process(receiver, message)
            except Exception as error:
                if self._stopping.is_set():
                    return
                failures += 1
                # Say it once, then now and then: an unreachable namespace should not drown the log.
                level = logging.WARNING if failures % 60 == 1 else logging.DEBUG
                LOG.log(level, "Service Bus receiver for %s (%s): %s: %s; reconnecting", self._invoker.spec.name,
                        self.queue_name, type(error).__name__, error)
                self._stopping.wait(RECONNECT_DELAY_SECONDS)

    def _process(self, receiver: Any, message: ServiceBusReceivedMessage) -> None:
        self._renewer.register(receiver, message)
        try:
            self._invoker.invoke(to_functions_message(message))
        except Exception:
            LOG.exception("function %s failed on message %s (delivery %s); abandoning",
                          self._invoker.spec.name, message.message_id, message.delivery_count)
            receiver.abandon_message(message)
            return
        if self._options.auto_complete_messages:
            receiver.complete_message(message)


class ServiceBusOutputs:
    """Sends what functions put in Service Bus output bindings, one cached sender per queue."""

    def __init__(self, connection_lookup: ConnectionLookup) -> None:
        self._lookup = connection_lookup
        self._clients: dict[str, ServiceBusClient] = {}
        self._senders: dict[tuple[str, str], ServiceBusSender] = {}
        self._lock = threading.Lock()

    def send(self, binding: Binding, value: Any) -> None:
        connection = str(binding.properties.get("connection") or "AzureWebJobsServiceBus")
        queue = str(binding.properties.get("queueName"))
        values = value if isinstance(value, list) else [value]
        messages = [ServiceBusMessage(item if isinstance(item, str | bytes) else json.dumps(item)) for item in values]
        with self._lock:
            sender = self._senders.get((connection, queue))
            if sender is None:
                client = self._clients.get(connection)
                if client is None:
                    client = self._clients[connection] = ServiceBusClient.from_connection_string(
                        self._lookup(connection))
                sender = self._senders[(connection, queue)] = client.get_queue_sender(queue)
            sender.send_messages(messages)

    def close(self) -> None:
        with self._lock:
            for sender in self._senders.values():
                sender.close()
            for client in self._clients.values():
                client.close()
            self._senders.clear()
            self._clients.clear()
