"""Many clients at once: the Functions host and its apps connect in bursts, and the SDK allows a TCP
connect one second, so the stand-in must accept a burst without dropping anyone, and a client that
simply went away is not an error worth shouting about."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from local_azure.servicebus import QueueSettings, ServiceBusStandIn

pytestmark = pytest.mark.timeout(90)

BURST = 64  # more than the whole production app opens at start-up (7 triggers, 8 concurrent calls)
JOIN_SECONDS = 60.0


@pytest.fixture
def stand_in() -> Iterator[ServiceBusStandIn]:
    with ServiceBusStandIn([QueueSettings("burst")]) as server:
        yield server


def test_a_burst_of_clients_connecting_at_once_all_connect_on_the_first_try(stand_in: ServiceBusStandIn) -> None:
    start = threading.Barrier(BURST)
    failures: list[BaseException] = []

    def send_one(index: int) -> None:
        start.wait(JOIN_SECONDS)
        try:
            # retry_total=0: a refused or timed-out connect must surface, not hide behind a retry.
            with ServiceBusClient.from_connection_string(stand_in.connection_string, retry_total=0) as client, \
                    client.get_queue_sender("burst") as sender:
                sender.send_messages(ServiceBusMessage(f"message {index}"))
        except Exception as error:
            failures.append(error)

    threads = [threading.Thread(target=send_one, args=(index,), daemon=True) for index in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_SECONDS)

    assert [repr(error) for error in failures] == []
    assert stand_in.active_count("burst") == BURST


def test_a_client_that_went_away_is_logged_at_debug_not_error(stand_in: ServiceBusStandIn,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # Proton's own words when the broker answers a client that already closed its socket.
    logging.getLogger("proton").error("Couldn't send: %r" % BrokenPipeError(32, "Broken pipe"))  # noqa: UP031

    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []
    assert any("went away" in record.getMessage() for record in caplog.records)


def test_other_socket_errors_from_proton_stay_errors(stand_in: ServiceBusStandIn,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("proton").error("Couldn't send: %r" % OSError(28, "No space left on device"))  # noqa: UP031

    assert [record.levelname for record in caplog.records if record.name == "proton"] == ["ERROR"]
