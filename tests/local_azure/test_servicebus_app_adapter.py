"""The app's Service Bus adapter against the stand-in through the real SDK: the largest alert the intake
accepts fits its queue, and a message the queue refuses as too large comes back as `MessageTooLarge`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient

from local_azure.servicebus import STANDARD_MAX_MESSAGE_BYTES, QueueSettings, ServiceBusStandIn
from shared.adapters.servicebus_bus import ServiceBusMessageBus
from shared.core.alerts import limits_for_queue, queued_size, read_alert
from shared.core.model import OutboundMessage
from shared.ports import MessageTooLarge
from tests.pipeline import alert

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def stand_in() -> Iterator[ServiceBusStandIn]:
    with ServiceBusStandIn([QueueSettings("alerts")]) as server:
        yield server


@pytest.fixture
def bus(stand_in: ServiceBusStandIn) -> Iterator[ServiceBusMessageBus]:
    adapter = ServiceBusMessageBus(ServiceBusClient.from_connection_string(stand_in.connection_string, retry_total=0))
    yield adapter
    adapter.close()


def alert_of_size(size: int) -> dict[str, Any]:
    """A valid alert that takes exactly `size` bytes on the queue (padding in strings under the length limit)."""
    document = alert()
    document["data"]["alertContext"] = {"pad": []}
    while (missing := size - queued_size(document)) > 0:
        # Each new string adds its length plus quotes and a separator.
        document["data"]["alertContext"]["pad"].append("x" * max(0, min(60_000, missing - 4)))
    assert queued_size(document) == size
    return document


def message(document: dict[str, Any]) -> OutboundMessage:
    # The longest ids the intake uses: a 64-character key and a 128-character correlation id.
    return OutboundMessage(queue="alerts", message_id="k" * 64, body=document, correlation_id="c" * 128)


def test_the_largest_alert_the_intake_accepts_fits_the_standard_queue(
        stand_in: ServiceBusStandIn, bus: ServiceBusMessageBus) -> None:
    document = alert_of_size(STANDARD_MAX_MESSAGE_BYTES)
    raw = json.dumps(document).encode()
    read_alert(raw, limits_for_queue(STANDARD_MAX_MESSAGE_BYTES))  # the intake accepts it ...
    bus.send([message(document)])  # ... and the queue takes it
    assert stand_in.queue_depth("alerts") == 1


def test_a_message_the_queue_refuses_as_too_large_is_message_too_large(
        stand_in: ServiceBusStandIn, bus: ServiceBusMessageBus) -> None:
    with pytest.raises(MessageTooLarge):
        bus.send([message(alert_of_size(STANDARD_MAX_MESSAGE_BYTES + 2048))])
    assert stand_in.queue_depth("alerts") == 0


def test_messages_sent_at_once_from_many_threads_each_arrive_once(
        stand_in: ServiceBusStandIn, bus: ServiceBusMessageBus) -> None:
    def send(index: int) -> None:
        bus.send([OutboundMessage(queue="alerts", message_id=f"m-{index}", body=alert(), correlation_id="c")])

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(send, range(64)))

    assert stand_in.queue_depth("alerts") == 64


def test_a_message_too_large_fails_only_its_own_sender_among_concurrent_ones(
        stand_in: ServiceBusStandIn, bus: ServiceBusMessageBus) -> None:
    too_large = alert_of_size(STANDARD_MAX_MESSAGE_BYTES + 1024)

    def send(index: int) -> str:
        document = too_large if index == 5 else alert()
        try:
            bus.send([OutboundMessage(queue="alerts", message_id=f"m-{index}", body=document, correlation_id="c")])
        except MessageTooLarge:
            return "too large"
        return "sent"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(send, range(16)))

    assert outcomes == ["sent"] * 5 + ["too large"] + ["sent"] * 10
    assert stand_in.queue_depth("alerts") == 15
