"""Service Bus queue triggers: peek-lock receivers through `azure-servicebus`, as the Functions extension runs them.

`host.json` `extensions.serviceBus` is honoured: `maxConcurrentCalls` concurrent invocations per
function on that function's one receiver, `prefetchCount`, `autoCompleteMessages` (complete after
success) and `maxAutoLockRenewalDuration` (locks of running invocations are renewed). A failed
invocation abandons the message, so the broker redelivers it with a higher delivery count and
dead-letters it after the queue's max delivery count.

A trigger with `cardinality` many is passed a list of what is there, up to `maxMessageBatchSize`
messages, one batch at a time per function (`maxConcurrentCalls` applies to single dispatch only), and
settled as one: every message completed when the invocation succeeds, every one abandoned when it fails.
Its receiver prefetches (at least `BATCH_PREFETCH`), and a batch is the first message and what the
receiver already holds: the Python SDK, asked for more than it holds, waits for a 0.2 s gap after the
last message, which the runtime does not (a lone alert would wait that long before it is planned).
The runtime's SDK (Azure.Messaging.ServiceBus) hands what its buffer holds at once too, but when the
buffer was empty it waits up to 20 ms after the first message for more (`BeginReceiveRemoteMessages`'s
batch wait): here a trickle comes in smaller batches than there. Done here with the Python SDK's receive,
that wait polls the socket and cost more host CPU than it saved (the HTTP storm, 281 -> 251 alerts/s).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from azure.functions.servicebus import ServiceBusMessage as FunctionsServiceBusMessage
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceivedMessage,
    ServiceBusReceiveMode,
    ServiceBusReceiver,
    ServiceBusSender,
)
from azure.servicebus.amqp import AmqpMessageBodyType
from azure.servicebus.exceptions import ServiceBusError

from local_azure.host.discovery import Binding
from local_azure.host.invocation import Invoker
from local_azure.host.settings import ServiceBusOptions

LOG = logging.getLogger("local_azure.host")
BATCH_PREFETCH = 250  # what a batch trigger's receiver holds ahead, to hand a batch what is waiting
RECEIVE_WAIT_SECONDS = 1.0  # bounds how long stop() waits for a receiver to notice
BUSY_WAIT_SECONDS = 0.1  # how soon a finished invocation is settled while others run
RECONNECT_DELAY_SECONDS = 1.0
LOCK_RENEWAL_MARGIN_SECONDS = 10.0  # renew this long before a lock lapses (less for short locks)

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


@dataclass
class _InFlight:
    """Messages handed to a handler thread (one, or a batch); only the receiving thread settles or renews them."""

    messages: list[ServiceBusReceivedMessage]
    received_at: float
    lock_span: float
    outcome: Future[bool]


class ServiceBusListener:
    """One trigger function's message pump, shaped like the extension's `ServiceBusProcessor`.

    The runtime gives each function one receiver (one AMQP connection) and runs up to
    `maxConcurrentCalls` invocations at once on it. A receiver is not thread-safe, so one thread
    owns it (receiving, settling, renewing locks) and a pool runs the invocations; opening a
    connection per concurrent call instead made dozens of connections race at start-up.
    """

    def __init__(self, invoker: Invoker, connection_string: str, options: ServiceBusOptions,
                 stopping: threading.Event) -> None:
        self._invoker = invoker
        self._connection_string = connection_string
        self._options = options
        self._stopping = stopping
        self._finished = threading.Event()  # wakes the receiving thread when an invocation returns
        self._batched = str(invoker.spec.trigger.properties.get("cardinality") or "one").lower() == "many"
        # A batch trigger runs one batch at a time, each of up to maxMessageBatchSize messages.
        self._slots = 1 if self._batched else options.max_concurrent_calls
        self._receive_count = options.max_message_batch_size if self._batched else 1
        self._prefetch = max(options.prefetch_count, min(BATCH_PREFETCH, self._receive_count)) if self._batched \
            else options.prefetch_count
        self._handlers = ThreadPoolExecutor(max_workers=self._slots,
                                            thread_name_prefix=f"sb-{invoker.spec.name}")
        self._thread = threading.Thread(target=self._run, name=f"sb-{invoker.spec.name}-receiver", daemon=True)

    @property
    def queue_name(self) -> str:
        return self._invoker.spec.queue_name

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        self._handlers.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                # A batch's second receive must not sit in the SDK's socket wait (0.2 s) when nothing more is
                # there: its client reads the socket in steps no longer than the batch's gathering.
                with ServiceBusClient.from_connection_string(self._connection_string, retry_total=1) as client, \
                        client.get_queue_receiver(self.queue_name, receive_mode=ServiceBusReceiveMode.PEEK_LOCK,
                                                  prefetch_count=self._prefetch) as receiver:
                    failures = 0
                    self._pump(receiver)
            except Exception as error:
                if self._stopping.is_set():
                    return
                failures += 1
                # Say it once, then now and then: an unreachable namespace should not drown the log.
                level = logging.WARNING if failures % 60 == 1 else logging.DEBUG
                LOG.log(level, "Service Bus receiver for %s (%s): %s: %s; reconnecting", self._invoker.spec.name,
                        self.queue_name, type(error).__name__, error)
                self._stopping.wait(RECONNECT_DELAY_SECONDS)

    def _pump(self, receiver: ServiceBusReceiver) -> None:
        # Messages still in flight when the receiver fails are left to their locks: the broker
        # redelivers them once the locks expire, as the service does for a dropped connection.
        in_flight: list[_InFlight] = []
        while not self._stopping.is_set():
            in_flight = [item for item in in_flight if not self._settle_if_done(receiver, item)]
            self._renew_locks(receiver, in_flight)
            if len(in_flight) >= self._slots:
                self._finished.wait(BUSY_WAIT_SECONDS)
                self._finished.clear()
                continue
            # While invocations run, come back soon to settle them; when idle, wait longer.
            wait = BUSY_WAIT_SECONDS if in_flight else RECEIVE_WAIT_SECONDS
            received = receiver.receive_messages(max_message_count=1, max_wait_time=wait)
            waiting = _prefetched(receiver) if received and self._batched else 0
            if waiting:
                # Then what is already here, at once: the runtime hands a batch trigger what is waiting.
                # (Asking the SDK for more than it holds would wait for a 0.2 s gap after the last.)
                received += receiver.receive_messages(max_message_count=min(waiting, self._receive_count - 1),
                                                      max_wait_time=RECEIVE_WAIT_SECONDS)
            if received and self._batched:
                in_flight.append(self._dispatch(list(received)))
            else:
                in_flight.extend(self._dispatch([message]) for message in received)

    def _dispatch(self, messages: list[ServiceBusReceivedMessage]) -> _InFlight:
        now = time.time()
        locks = [m.locked_until_utc.timestamp() - now for m in messages if m.locked_until_utc]
        span = min(locks) if locks else LOCK_RENEWAL_MARGIN_SECONDS
        outcome = self._handlers.submit(self._invoke, messages)
        outcome.add_done_callback(lambda _: self._finished.set())
        return _InFlight(messages, now, max(span, 0.0), outcome)

    def _invoke(self, messages: list[ServiceBusReceivedMessage]) -> bool:
        try:
            if self._batched:
                self._invoker.invoke([to_functions_message(message) for message in messages])
            else:
                self._invoker.invoke(to_functions_message(messages[0]))
        except Exception:
            LOG.exception("function %s failed on message(s) %s (delivery %s); abandoning", self._invoker.spec.name,
                          ", ".join(str(m.message_id) for m in messages[:5]) + (" ..." if len(messages) > 5 else ""),
                          messages[0].delivery_count)
            return False
        return True

    def _settle_if_done(self, receiver: ServiceBusReceiver, item: _InFlight) -> bool:
        if not item.outcome.done():
            return False
        failed = item.outcome.cancelled() or not item.outcome.result()
        for message in item.messages:
            if failed:
                receiver.abandon_message(message)
            elif self._options.auto_complete_messages:
                receiver.complete_message(message)
        return True

    def _renew_locks(self, receiver: ServiceBusReceiver, in_flight: list[_InFlight]) -> None:
        """`maxAutoLockRenewalDuration`: renew a running invocation's lock before it lapses."""
        now = time.time()
        for item in in_flight:
            if item.outcome.done() or now - item.received_at >= self._options.max_auto_lock_renewal_seconds:
                continue
            margin = min(LOCK_RENEWAL_MARGIN_SECONDS, item.lock_span / 2)
            for message in item.messages:
                locked_until = message.locked_until_utc
                if locked_until is None or locked_until.timestamp() - now > margin:
                    continue
                try:
                    receiver.renew_message_lock(message)
                except ServiceBusError as error:  # the lock is already gone; the broker will redeliver
                    LOG.warning("could not renew the lock on message %s for %s: %s", message.message_id,
                                self._invoker.spec.name, error)


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


def _prefetched(receiver: ServiceBusReceiver) -> int:
    """How many messages the receiver holds already (prefetched), from the SDK's own buffer; 0 when this
    version of the SDK keeps it elsewhere (a batch is then its first message alone)."""
    buffer = getattr(getattr(receiver, "_handler", None), "_received_messages", None)
    size = getattr(buffer, "qsize", None)
    return int(size()) if callable(size) else 0
