"""Starting the sample app on the host, with the Service Bus stand-in, for the host's tests."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue

from local_azure.host import FunctionsHost
from local_azure.servicebus import QueueSettings, ServiceBusStandIn

SAMPLE_APP = Path(__file__).parent
SAMPLE_LOCAL_SETTINGS = SAMPLE_APP / "sample.local.settings.json"
APP_REFERENCE = "sample_function_app:app"
FLAKY_MAX_DELIVERIES = 3
WAIT_SECONDS = 10.0
SLOW_LOCK_SECONDS = 1.0

QUEUES = [
    QueueSettings("inbox"),
    QueueSettings("outbox"),
    QueueSettings("via-output"),
    QueueSettings("flaky", max_delivery_count=FLAKY_MAX_DELIVERIES, lock_duration_seconds=5),
    QueueSettings("paired"),
    QueueSettings("batched", max_delivery_count=2, lock_duration_seconds=5),
    QueueSettings("slow", lock_duration_seconds=SLOW_LOCK_SECONDS),
]


@contextmanager
def running_host(settings: Mapping[str, str] | None = None, **options: Any) -> Iterator[FunctionsHost]:
    host = FunctionsHost(SAMPLE_APP, app=APP_REFERENCE, settings=settings,
                         local_settings=SAMPLE_LOCAL_SETTINGS, **options)
    host.start()
    try:
        yield host
    finally:
        host.stop()


@contextmanager
def service_bus() -> Iterator[ServiceBusStandIn]:
    stand_in = ServiceBusStandIn(QUEUES)
    stand_in.start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


def send(connection_string: str, queue: str, body: str, **properties: Any) -> None:
    with ServiceBusClient.from_connection_string(connection_string) as client, client.get_queue_sender(queue) as sender:
        sender.send_messages(ServiceBusMessage(body, **properties))


def receive_json(connection_string: str, queue: str, count: int = 1, dead_letter: bool = False,
                 wait_seconds: float = WAIT_SECONDS) -> list[dict[str, Any]]:
    """Up to `count` messages (completing them), waiting at most `wait_seconds` in all."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait_seconds
    sub_queue = ServiceBusSubQueue.DEAD_LETTER if dead_letter else None
    with ServiceBusClient.from_connection_string(connection_string) as client, \
            client.get_queue_receiver(queue, sub_queue=sub_queue) as receiver:
        while len(found) < count and (remaining := deadline - time.monotonic()) > 0:
            for message in receiver.receive_messages(max_message_count=count - len(found),
                                                     max_wait_time=min(1.0, remaining)):
                found.append(json.loads(str(message)) if not dead_letter else {
                    "body": str(message), "delivery_count": message.delivery_count,
                    "reason": message.dead_letter_reason})
                receiver.complete_message(message)
    return found
