"""The Service Bus stand-in, specified through the real `azure-servicebus` SDK over a real socket.

Delivery counts are what the service sends in the AMQP header and the Python SDK reports unchanged:
0 on the first delivery, one more after each abandon or lock expiry.
"""

from __future__ import annotations

import datetime as dt
import json
import queue as stdqueue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceivedMessage,
    ServiceBusReceiveMode,
    ServiceBusSubQueue,
)
from azure.servicebus.exceptions import (
    MessageLockLostError,
    MessageSizeExceededError,
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
    ServiceBusError,
)

from local_azure.servicebus import STANDARD_MAX_MESSAGE_BYTES, QueueSettings, ServiceBusStandIn, load_queues
from shared.topology import QUEUE_PROPERTIES

pytestmark = pytest.mark.timeout(60)

WAIT = 3  # seconds a receive may wait for a message that should be there
SHORT_LOCK = 1.0

QUEUES = [
    QueueSettings("work", max_delivery_count=3, lock_duration_seconds=SHORT_LOCK),
    QueueSettings("dedup", requires_duplicate_detection=True, duplicate_detection_window_seconds=60),
    QueueSettings("expiring", dead_lettering_on_message_expiration=True),
    QueueSettings("vanishing", dead_lettering_on_message_expiration=False),
    QueueSettings("shared", lock_duration_seconds=60),
]


@pytest.fixture
def stand_in() -> Iterator[ServiceBusStandIn]:
    server = ServiceBusStandIn(QUEUES)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(stand_in: ServiceBusStandIn) -> Iterator[ServiceBusClient]:
    with ServiceBusClient.from_connection_string(stand_in.connection_string, retry_total=1) as sb_client:
        yield sb_client


def send(client: ServiceBusClient, queue: str, *messages: ServiceBusMessage) -> None:
    with client.get_queue_sender(queue) as sender:
        sender.send_messages(list(messages) if len(messages) > 1 else messages[0])


def receive_one(client: ServiceBusClient, queue: str, **kwargs: object) -> ServiceBusReceivedMessage:
    with client.get_queue_receiver(queue, **kwargs) as receiver:  # type: ignore[arg-type]
        messages = receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
    assert len(messages) == 1
    return messages[0]


def wait_until(condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


# ---- addressing ---------------------------------------------------------------------------------
def test_connection_string_is_the_development_emulator_format(stand_in: ServiceBusStandIn) -> None:
    assert stand_in.connection_string == (
        f"Endpoint=sb://localhost:{stand_in.port};SharedAccessKeyName=RootManageSharedAccessKey;"
        "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true")


def test_config_file_declares_exactly_the_topology_queues() -> None:
    config = Path(__file__).resolve().parents[2] / "local_azure" / "config" / "servicebus.json"
    declared = {queue.name: queue for queue in load_queues(config)}
    assert set(declared) == {queue.value for queue in QUEUE_PROPERTIES}
    for queue, expected in QUEUE_PROPERTIES.items():
        actual = declared[queue.value]
        assert actual.max_delivery_count == expected.max_delivery_count
        assert actual.lock_duration_seconds == expected.lock_duration_seconds
        assert actual.requires_duplicate_detection == expected.requires_duplicate_detection
        assert actual.duplicate_detection_window_seconds == expected.duplicate_detection_window_seconds
        assert actual.dead_lettering_on_message_expiration == expected.dead_lettering_on_message_expiration


def test_config_file_is_in_the_emulator_layout() -> None:
    config = Path(__file__).resolve().parents[2] / "local_azure" / "config" / "servicebus.json"
    parsed = json.loads(config.read_text(encoding="utf-8"))
    assert parsed["UserConfig"]["Namespaces"][0]["Name"] == "sbemulatorns"
    assert parsed["UserConfig"]["Logging"] == {"Type": "File"}


# ---- send, receive, settle ----------------------------------------------------------------------
def test_completed_message_leaves_the_queue(stand_in: ServiceBusStandIn, client: ServiceBusClient) -> None:
    send(client, "work", ServiceBusMessage(b"hello"))
    with client.get_queue_receiver("work") as receiver:
        [message] = receiver.receive_messages(max_wait_time=WAIT)
        assert b"".join(message.body) == b"hello"
        receiver.complete_message(message)
    assert stand_in.queue_depth("work") == 0


def test_first_delivery_reports_delivery_count_zero(client: ServiceBusClient) -> None:
    send(client, "work", ServiceBusMessage("first"))
    assert receive_one(client, "work").delivery_count == 0


def test_abandoned_message_is_redelivered_with_delivery_count_one_higher(client: ServiceBusClient) -> None:
    send(client, "work", ServiceBusMessage("again"))
    with client.get_queue_receiver("work") as receiver:
        [first] = receiver.receive_messages(max_wait_time=WAIT)
        receiver.abandon_message(first)
        [second] = receiver.receive_messages(max_wait_time=WAIT)
    assert second.message_id == first.message_id
    assert second.sequence_number == first.sequence_number
    assert (first.delivery_count, second.delivery_count) == (0, 1)
    assert second.lock_token != first.lock_token


def test_message_abandoned_max_delivery_count_times_moves_to_dead_letter_queue(
        stand_in: ServiceBusStandIn, client: ServiceBusClient) -> None:
    send(client, "work", ServiceBusMessage("poison", message_id="poison-1"))
    with client.get_queue_receiver("work") as receiver:
        for _ in range(3):  # MaxDeliveryCount of "work"
            [message] = receiver.receive_messages(max_wait_time=WAIT)
            receiver.abandon_message(message)
        assert receiver.receive_messages(max_wait_time=0.5) == []
    assert stand_in.queue_depth("work") == 0
    dead = receive_one(client, "work", sub_queue=ServiceBusSubQueue.DEAD_LETTER)
    assert dead.message_id == "poison-1"
    assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
    assert dead.dead_letter_source == "work"


def test_explicit_dead_letter_carries_reason_and_description(
        stand_in: ServiceBusStandIn, client: ServiceBusClient) -> None:
    send(client, "work", ServiceBusMessage("bad alert"))
    with client.get_queue_receiver("work") as receiver:
        [message] = receiver.receive_messages(max_wait_time=WAIT)
        receiver.dead_letter_message(message, reason="MalformedAlert", error_description="no alertRule field")
    assert stand_in.dead_letter_depth("work") == 1
    with client.get_queue_receiver("work", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as receiver:
        [dead] = receiver.receive_messages(max_wait_time=WAIT)
        assert dead.dead_letter_reason == "MalformedAlert"
        assert dead.dead_letter_error_description == "no alertRule field"
        assert dead.application_properties[b"DeadLetterReason"] == b"MalformedAlert"
        receiver.complete_message(dead)
    assert stand_in.dead_letter_depth("work") == 0


def test_message_metadata_round_trips(client: ServiceBusClient) -> None:
    send(client, "work", ServiceBusMessage(
        '{"run": 1}', message_id="m-1", correlation_id="run-42", subject="consent.requested",
        content_type="application/json", application_properties={"runId": "42", "attempt": 2, "urgent": True},
        time_to_live=dt.timedelta(minutes=5)))
    message = receive_one(client, "work")
    assert str(message) == '{"run": 1}'
    assert (message.message_id, message.correlation_id) == ("m-1", "run-42")
    assert (message.subject, message.content_type) == ("consent.requested", "application/json")
    assert message.application_properties == {b"runId": b"42", b"attempt": 2, b"urgent": True}
    assert message.time_to_live == dt.timedelta(minutes=5)


def test_received_message_carries_broker_properties(client: ServiceBusClient) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    send(client, "work", ServiceBusMessage("a"), ServiceBusMessage("b"))
    with client.get_queue_receiver("work") as receiver:
        messages = receiver.receive_messages(max_message_count=2, max_wait_time=WAIT)
        while len(messages) < 2:
            messages += receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
    first, second = messages
    assert second.sequence_number == first.sequence_number + 1
    assert first.enqueued_time_utc >= before
    assert first.locked_until_utc > first.enqueued_time_utc
    assert first.lock_token is not None


def test_a_list_of_messages_is_enqueued_as_separate_messages(
        stand_in: ServiceBusStandIn, client: ServiceBusClient) -> None:
    send(client, "work", *[ServiceBusMessage(f"m{i}", message_id=f"id-{i}") for i in range(3)])
    assert stand_in.queue_depth("work") == 3


def test_receive_and_delete_removes_the_message_on_delivery(
        stand_in: ServiceBusStandIn, client: ServiceBusClient) -> None:
    send(client, "work", ServiceBusMessage("once"))
    message = receive_one(client, "work", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE)
    assert str(message) == "once"
    assert stand_in.queue_depth("work") == 0


def test_deferred_message_is_received_by_sequence_number(
        stand_in: ServiceBusStandIn, client: ServiceBusClient) -> None:
    send(client, "work", ServiceBusMessage("later"))
    with client.get_queue_receiver("work") as receiver:
        [message] = receiver.receive_messages(max_wait_time=WAIT)
        receiver.defer_message(message)
        assert receiver.receive_messages(max_wait_time=0.5) == []
        [deferred] = receiver.receive_deferred_messages([message.sequence_number])
        assert str(deferred) == "later"
        receiver.complete_message(deferred)
    assert stand_in.queue_depth("work") == 0


# ---- locks --------------------------------------------------------------------------------------
def test_two_receivers_never_hold_the_same_locked_message(
        stand_in: ServiceBusStandIn, client: ServiceBusClient) -> None:
    send(client, "shared", *[ServiceBusMessage(f"m{i}") for i in range(6)])
    seen: list[list[int]] = [[], []]

    def drain(into: list[int]) -> None:
        with ServiceBusClient.from_connection_string(stand_in.connection_string) as own_client, \
                own_client.get_queue_receiver("shared") as receiver:
            for _ in range(6):
                into.extend(m.sequence_number for m in receiver.receive_messages(max_wait_time=0.5))

    threads = [threading.Thread(target=drain, args=(into,)) for into in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(set(seen[0] + seen[1]))
    assert len(seen[0]) + len(seen[1]) == 6


def test_renewing_a_lock_extends_locked_until(client: ServiceBusClient) -> None:
    send(client, "work", ServiceBusMessage("long job"))
    with client.get_queue_receiver("work") as receiver:
        [message] = receiver.receive_messages(max_wait_time=WAIT)
        first_until = message.locked_until_utc
        time.sleep(0.3)
        renewed_until = receiver.renew_message_lock(message)
        assert renewed_until > first_until
        time.sleep(SHORT_LOCK * 0.8)  # past the original lock, inside the renewed one
        receiver.complete_message(message)


def test_expired_lock_makes_the_message_available_again_with_count_one_higher(client: ServiceBusClient) -> None:
    send(client, "work", ServiceBusMessage("slow"))
    with client.get_queue_receiver("work") as receiver:
        [first] = receiver.receive_messages(max_wait_time=WAIT)
        time.sleep(SHORT_LOCK + 0.2)
        [second] = receiver.receive_messages(max_wait_time=WAIT)
    assert second.sequence_number == first.sequence_number
    assert second.delivery_count == first.delivery_count + 1


def test_settling_after_the_lock_expired_raises_lock_lost(client: ServiceBusClient) -> None:
    send(client, "work", ServiceBusMessage("too slow"))
    with client.get_queue_receiver("work") as receiver:
        [message] = receiver.receive_messages(max_wait_time=WAIT)
        time.sleep(SHORT_LOCK + 0.2)
        message._expiry = None  # let the SDK ask the service instead of refusing locally
        with pytest.raises(MessageLockLostError):
            receiver.complete_message(message)


# ---- scheduling ---------------------------------------------------------------------------------
def test_message_sent_with_a_scheduled_time_stays_invisible_until_then(
        stand_in: ServiceBusStandIn, client: ServiceBusClient) -> None:
    with client.get_queue_sender("work") as sender:  # opening a link takes a while; the clock starts after
        when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
        sender.send_messages(ServiceBusMessage("timeout", scheduled_enqueue_time_utc=when))
    assert stand_in.scheduled_count("work") == 1
    with client.get_queue_receiver("work") as receiver:
        assert receiver.receive_messages(max_wait_time=0.3) == []
        wait_until(lambda: stand_in.active_count("work") == 1)
        [message] = receiver.receive_messages(max_wait_time=WAIT)
    assert message.enqueued_time_utc >= when - dt.timedelta(milliseconds=1)


def test_schedule_messages_returns_sequence_numbers_and_cancel_removes_them(
        stand_in: ServiceBusStandIn, client: ServiceBusClient) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    with client.get_queue_sender("work") as sender:
        kept, cancelled = sender.schedule_messages([ServiceBusMessage("kept"), ServiceBusMessage("cancelled")], when)
        sender.cancel_scheduled_messages(cancelled)
    assert kept != cancelled
    assert stand_in.scheduled_count("work") == 1
    with client.get_queue_receiver("work") as receiver:
        [peeked] = receiver.peek_messages(max_message_count=5)
    assert peeked.sequence_number == kept
    assert peeked.scheduled_enqueue_time_utc is not None


def test_peek_neither_locks_nor_removes(stand_in: ServiceBusStandIn, client: ServiceBusClient) -> None:
    send(client, "work", ServiceBusMessage("look"))
    with client.get_queue_receiver("work") as receiver:
        [peeked] = receiver.peek_messages()
        assert str(peeked) == "look"
        [received] = receiver.receive_messages(max_wait_time=WAIT)
        assert received.sequence_number == peeked.sequence_number


# ---- duplicate detection and expiry --------------------------------------------------------------
def test_duplicate_message_id_is_accepted_and_dropped(stand_in: ServiceBusStandIn, client: ServiceBusClient) -> None:
    send(client, "dedup", ServiceBusMessage("one", message_id="same"))
    send(client, "dedup", ServiceBusMessage("two", message_id="same"))
    assert stand_in.queue_depth("dedup") == 1
    assert str(receive_one(client, "dedup")) == "one"


def test_without_duplicate_detection_the_same_id_is_kept_twice(
        stand_in: ServiceBusStandIn, client: ServiceBusClient) -> None:
    send(client, "work", ServiceBusMessage("one", message_id="same"))
    send(client, "work", ServiceBusMessage("two", message_id="same"))
    assert stand_in.queue_depth("work") == 2


# The SDK sends time to live in whole seconds, so one second is the shortest.
def test_expired_message_is_dead_lettered_when_the_queue_says_so(
        stand_in: ServiceBusStandIn, client: ServiceBusClient) -> None:
    send(client, "expiring", ServiceBusMessage("stale", time_to_live=dt.timedelta(seconds=1)))
    wait_until(lambda: stand_in.dead_letter_depth("expiring") == 1)
    dead = receive_one(client, "expiring", sub_queue=ServiceBusSubQueue.DEAD_LETTER)
    assert dead.dead_letter_reason == "TTLExpiredException"


def test_expired_message_is_dropped_when_the_queue_does_not_dead_letter(
        stand_in: ServiceBusStandIn, client: ServiceBusClient) -> None:
    send(client, "vanishing", ServiceBusMessage("stale", time_to_live=dt.timedelta(seconds=1)))
    wait_until(lambda: stand_in.queue_depth("vanishing") == 0)
    assert stand_in.dead_letter_depth("vanishing") == 0


# ---- errors -------------------------------------------------------------------------------------
def test_unknown_queue_with_a_sas_connection_string_fails_at_put_token(client: ServiceBusClient) -> None:
    # The service refuses the SAS token for an entity that does not exist, before any link is attached.
    with pytest.raises(ServiceBusAuthenticationError) as raised, client.get_queue_sender("no-such-queue") as sender:
        sender.send_messages(ServiceBusMessage("lost"))
    assert "Status code: 404" in str(raised.value.inner_exception)
    assert "'sb://localhost:" in str(raised.value.inner_exception)
    assert "/no-such-queue' could not be found" in str(raised.value.inner_exception)


def test_unknown_queue_with_an_entra_token_is_refused_at_attach_with_not_found(stand_in: ServiceBusStandIn) -> None:
    with ServiceBusClient(f"localhost:{stand_in.port}", StaticToken(), use_tls=False, retry_total=0) as jwt_client, \
            pytest.raises(MessagingEntityNotFoundError, match="could not be found"), \
            jwt_client.get_queue_receiver("no-such-queue") as receiver:
        receiver.receive_messages(max_wait_time=1)


def test_an_entra_token_works_for_a_known_queue(stand_in: ServiceBusStandIn, client: ServiceBusClient) -> None:
    send(client, "work", ServiceBusMessage("via managed identity"))
    with ServiceBusClient(f"localhost:{stand_in.port}", StaticToken(), use_tls=False) as jwt_client:
        assert str(receive_one(jwt_client, "work")) == "via managed identity"


class StaticToken:
    """A TokenCredential as a managed identity would be; the stand-in accepts any token."""

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken("header.payload.signature", int(time.time()) + 3600)


def test_a_session_receiver_is_refused_because_no_queue_requires_sessions(client: ServiceBusClient) -> None:
    with pytest.raises(ServiceBusError, match="does not require sessions"), \
            client.get_queue_receiver("work", session_id="run-1") as receiver:
        receiver.receive_messages(max_wait_time=1)


# ---- lifecycle ----------------------------------------------------------------------------------
def test_stop_returns_while_a_client_is_still_connected() -> None:
    server = ServiceBusStandIn(QUEUES).start()
    client = ServiceBusClient.from_connection_string(server.connection_string, retry_total=0)
    sender = client.get_queue_sender("work")
    sender.send_messages(ServiceBusMessage("in flight"))
    server.stop()
    assert server.queue_depth("work") == 1  # state stays readable after stop
    sender.close()
    client.close()


def test_two_instances_listen_on_different_free_ports() -> None:
    with ServiceBusStandIn(QUEUES) as first, ServiceBusStandIn(QUEUES) as second:
        assert first.port != second.port
        assert first.port > 0


def test_command_line_serves_the_config_file_queues_until_sigterm() -> None:
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "local_azure.servicebus", "--port", "0",
         "--config", str(root / "local_azure" / "config" / "servicebus.json")],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        lines: stdqueue.Queue[str] = stdqueue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
        banner = lines.get(timeout=15)
        setting = lines.get(timeout=5).strip()
        assert "alerts" in banner
        connection_string = setting.removeprefix("ServiceBusConnection=")
        with ServiceBusClient.from_connection_string(connection_string) as sb_client:
            send(sb_client, "alerts", ServiceBusMessage("from the CLI"))
            assert str(receive_one(sb_client, "alerts")) == "from the CLI"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


# ---- message size -------------------------------------------------------------------------------
def test_a_message_within_the_standard_limit_is_delivered(client: ServiceBusClient) -> None:
    body = "x" * (250 * 1024)
    send(client, "work", ServiceBusMessage(body))
    assert str(receive_one(client, "work")) == body


def test_a_single_message_over_the_standard_limit_is_refused_as_the_service_refuses_it(
        stand_in: ServiceBusStandIn, client: ServiceBusClient) -> None:
    with pytest.raises(MessageSizeExceededError):
        send(client, "work", ServiceBusMessage("x" * (300 * 1024)))
    assert stand_in.queue_depth("work") == 0


def test_a_batch_over_the_standard_limit_is_refused_by_the_sdk_before_it_is_sent(
        stand_in: ServiceBusStandIn, client: ServiceBusClient) -> None:
    with pytest.raises(MessageSizeExceededError):
        send(client, "work", ServiceBusMessage("x" * (200 * 1024)), ServiceBusMessage("y" * (100 * 1024)))
    assert stand_in.queue_depth("work") == 0


def test_the_link_advertises_the_limit_the_sdk_sizes_batches_by(client: ServiceBusClient) -> None:
    with client.get_queue_sender("work") as sender:
        assert sender.create_message_batch().max_size_in_bytes == STANDARD_MAX_MESSAGE_BYTES


def test_a_premium_sized_limit_takes_a_larger_message() -> None:
    with ServiceBusStandIn(QUEUES, max_message_bytes=1024 * 1024) as premium, \
            ServiceBusClient.from_connection_string(premium.connection_string, retry_total=1) as sb_client:
        send(sb_client, "work", ServiceBusMessage("x" * (600 * 1024)))
        assert premium.queue_depth("work") == 1


# ---- test controls: a queue update, a sender stuck mid-send -------------------------------------
def test_a_lock_duration_update_applies_to_locks_taken_after_it(stand_in: ServiceBusStandIn,
                                                                client: ServiceBusClient) -> None:
    assert stand_in.set_lock_duration("shared", SHORT_LOCK) == 60
    send(client, "shared", ServiceBusMessage("short"))
    with client.get_queue_receiver("shared") as receiver:
        [first] = receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
        time.sleep(SHORT_LOCK + 0.5)  # the lock lapses; the message is handed out again
        [again] = receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
    assert (first.delivery_count, again.delivery_count) == (0, 1)


def test_a_held_send_gets_no_outcome_and_its_message_never_arrives(stand_in: ServiceBusStandIn,
                                                                   client: ServiceBusClient) -> None:
    stand_in.hold_sends("shared")
    failures: list[BaseException] = []

    def stuck_send() -> None:
        try:
            with client.get_queue_sender("shared") as sender:
                sender.send_messages(ServiceBusMessage("held"), timeout=2)
        except ServiceBusError as error:
            failures.append(error)

    sender = threading.Thread(target=stuck_send)
    sender.start()
    wait_until(lambda: stand_in.held_count() == 1)
    sender.join(30)
    assert failures  # the sender waited for an outcome that never came
    stand_in.stop_holding()
    assert stand_in.queue_depth("shared") == 0
    send(client, "shared", ServiceBusMessage("after"))
    assert str(receive_one(client, "shared")) == "after"
