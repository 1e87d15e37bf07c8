"""Service Bus queue triggers: the host drives the sample app's functions through the real SDK and the stand-in."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from local_azure.host import FunctionsHost
from local_azure.servicebus import QueueSettings, ServiceBusStandIn
from tests.local_azure.sample_app.harness import (
    FLAKY_MAX_DELIVERIES,
    SLOW_LOCK_SECONDS,
    receive_json,
    running_host,
    send,
    service_bus,
)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def broker() -> Iterator[ServiceBusStandIn]:
    with service_bus() as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def host(broker: ServiceBusStandIn) -> Iterator[FunctionsHost]:
    with running_host({"SAMPLE_SERVICEBUS": broker.connection_string}) as running:
        yield running


def test_a_message_flows_from_queue_through_function_to_queue(broker: ServiceBusStandIn, host: FunctionsHost) -> None:
    send(broker.connection_string, "inbox", "hello", message_id="m-1", correlation_id="c-1", subject="greeting",
         application_properties={"tenant": "contoso"})

    [relayed] = receive_json(broker.connection_string, "outbox")

    assert relayed["body"] == "hello"
    assert relayed["message_id"] == "m-1"
    assert relayed["correlation_id"] == "c-1"


def test_the_functions_own_logging_and_the_invocation_line_reach_the_log(broker: ServiceBusStandIn,
                                                                         host: FunctionsHost,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    send(broker.connection_string, "inbox", "logged", message_id="m-log")

    receive_json(broker.connection_string, "outbox")

    def executed() -> list[str]:
        lines = [record.getMessage() for record in caplog.records]
        return [line for line in lines if line.startswith("Executed 'Functions.relay'")]

    # The invocation line follows the function's return, so it may land just after the relayed message.
    deadline = time.monotonic() + 5
    while not executed() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "relaying m-log" in [record.getMessage() for record in caplog.records]
    assert executed()[0].startswith("Executed 'Functions.relay' (Succeeded, Id=")
    assert "trigger=serviceBusTrigger" in executed()[0]


def test_the_function_sees_the_message_metadata_the_runtime_passes(broker: ServiceBusStandIn,
                                                                   host: FunctionsHost) -> None:
    send(broker.connection_string, "inbox", "{}", message_id="m-2", subject="greeting", content_type="application/json",
         application_properties={"tenant": "contoso"})

    [seen] = receive_json(broker.connection_string, "outbox")

    assert seen["delivery_count"] == 1  # the runtime counts from one
    assert seen["subject"] == seen["label"] == "greeting"
    assert seen["content_type"] == "application/json"
    assert seen["application_properties"] == seen["user_properties"] == {"tenant": "contoso"}
    assert seen["has_lock_token"]
    assert seen["has_enqueued_time"]
    assert isinstance(seen["sequence_number"], int)


def test_a_failed_invocation_is_redelivered_with_a_higher_delivery_count(broker: ServiceBusStandIn,
                                                                         host: FunctionsHost) -> None:
    send(broker.connection_string, "flaky", json.dumps({"succeed_on": 2}), message_id="f-1")

    deliveries = receive_json(broker.connection_string, "outbox", count=2)

    assert [seen["delivery_count"] for seen in deliveries] == [1, 2]
    assert receive_json(broker.connection_string, "flaky", dead_letter=True, wait_seconds=1) == []


def test_a_message_that_always_fails_is_dead_lettered_after_the_max_delivery_count(broker: ServiceBusStandIn,
                                                                                   host: FunctionsHost) -> None:
    send(broker.connection_string, "flaky", json.dumps({"succeed_on": 99}), message_id="f-2")

    deliveries = receive_json(broker.connection_string, "outbox", count=FLAKY_MAX_DELIVERIES)
    [dead] = receive_json(broker.connection_string, "flaky", dead_letter=True)

    assert [seen["delivery_count"] for seen in deliveries] == list(range(1, FLAKY_MAX_DELIVERIES + 1))
    assert json.loads(dead["body"]) == {"succeed_on": 99}
    assert dead["reason"] == "MaxDeliveryCountExceeded"


def test_max_concurrent_calls_lets_invocations_of_one_function_overlap(broker: ServiceBusStandIn,
                                                                       host: FunctionsHost) -> None:
    # host.json says maxConcurrentCalls 2; the function only returns once two invocations are inside it.
    send(broker.connection_string, "paired", "one")
    send(broker.connection_string, "paired", "two")

    seen = receive_json(broker.connection_string, "outbox", count=2)

    assert sorted(message["body"] for message in seen) == ["one", "two"]
    assert [message["delivery_count"] for message in seen] == [1, 1]


def _send_many(connection_string: str, queue: str, bodies: list[str]) -> None:
    with ServiceBusClient.from_connection_string(connection_string) as client, client.get_queue_sender(queue) as sender:
        sender.send_messages([ServiceBusMessage(body) for body in bodies])


def test_a_batch_trigger_is_given_lists_of_what_is_waiting_each_message_once(broker: ServiceBusStandIn,
                                                                             host: FunctionsHost) -> None:
    # A batch is the first message and what the receiver holds by then: three sent together may come as
    # one list or several, never twice.
    _send_many(broker.connection_string, "batched", ["a", "b", "c"])

    batches: list[dict[str, list[object]]] = []
    while sum(len(b["bodies"]) for b in batches) < 3:
        found = receive_json(broker.connection_string, "outbox")
        assert found, f"only {batches} reached the outbox"
        batches += found  # type: ignore[arg-type]

    assert sorted(body for b in batches for body in b["bodies"]) == ["a", "b", "c"]  # type: ignore[type-var]
    assert {count for b in batches for count in b["delivery_counts"]} == {1}
    assert receive_json(broker.connection_string, "outbox", wait_seconds=1) == []  # completed: not given again


def test_a_failed_batch_is_abandoned_and_redelivered_then_dead_lettered(broker: ServiceBusStandIn,
                                                                        host: FunctionsHost) -> None:
    _send_many(broker.connection_string, "batched", ["fail"])

    batches = receive_json(broker.connection_string, "outbox", count=2)
    dead = receive_json(broker.connection_string, "batched", count=1, dead_letter=True)

    assert batches == [{"bodies": ["fail"], "delivery_counts": [1]}, {"bodies": ["fail"], "delivery_counts": [2]}]
    assert [message["body"] for message in dead] == ["fail"]


# A batch trigger's batches, made deterministic: a batch is the first message and what the receiver holds,
# so the test holds one invocation open while more messages reach the host's receiver, then lets it go.
GATED_QUEUES = [QueueSettings("gated"), QueueSettings("gated-seen")]
GATED_WAIT_SECONDS = 30.0  # generous: under load the host and the broker share two busy cores
GATED_BATCH_APP = '''
import json
import os
import time
from typing import List  # noqa: UP035  the worker's batch annotation check knows no list[...]

import azure.functions as func
from azure.servicebus import ServiceBusClient, ServiceBusMessage

app = func.FunctionApp()
HOLD_LIMIT_SECONDS = 60.0  # a test that never opens the gate fails instead of leaving the thread behind


@app.service_bus_queue_trigger(arg_name="msgs", queue_name="gated", connection="GATED_SERVICEBUS",
                               cardinality=func.Cardinality.MANY)
def gated(msgs: List[func.ServiceBusMessage]) -> None:  # noqa: UP006  the worker accepts only typing.List
    """Reports each batch it is given; holds a batch with "hold" in it until the gate file exists; fails a
    batch in which "fail" is on its first delivery."""
    seen = sorted([m.get_body().decode(), m.delivery_count] for m in msgs)
    with ServiceBusClient.from_connection_string(os.environ["GATED_SERVICEBUS"]) as client, \\
            client.get_queue_sender("gated-seen") as sender:
        sender.send_messages(ServiceBusMessage(json.dumps({"messages": seen})))
    if any(body == "hold" for body, _ in seen):
        deadline = time.monotonic() + HOLD_LIMIT_SECONDS
        while not os.path.exists(os.environ["GATE_FILE"]):
            if time.monotonic() > deadline:
                raise RuntimeError("the gate was never opened")
            time.sleep(0.02)
    if ["fail", 1] in seen:
        raise RuntimeError("failing the batch on purpose")
'''


@dataclass
class Gated:
    """A host running the gated batch app on a broker of its own."""

    broker: ServiceBusStandIn
    gate: Path

    @property
    def connection_string(self) -> str:
        return self.broker.connection_string

    def hold_a_batch(self) -> None:
        """Returns once an invocation is inside the function, held there until `open_gate`."""
        send(self.connection_string, "gated", "hold")
        assert receive_json(self.connection_string, "gated-seen", wait_seconds=GATED_WAIT_SECONDS) == [
            {"messages": [["hold", 1]]}]

    def send_one_by_one(self, bodies: list[str]) -> None:
        with ServiceBusClient.from_connection_string(self.connection_string) as client, \
                client.get_queue_sender("gated") as sender:
            for body in bodies:
                sender.send_messages(ServiceBusMessage(body))

    def wait_until_the_host_holds(self, count: int) -> None:
        """Every message is locked to the host's receiver, so the broker has sent it down the receiver's
        link. The host completes the held batch before it receives again and waits for the broker's answer,
        reading the connection's frames in order: these messages, sent earlier, are in its prefetch buffer
        by then, and the next batch is all of them."""
        _wait_until(lambda: self.broker.active_count("gated") == 0 and self.broker.queue_depth("gated") == count,
                    f"{count} messages locked to the host")

    def open_gate(self) -> None:
        self.gate.touch()

    def batches(self, messages: int) -> list[list[list[object]]]:
        """The batches reported until they hold `messages` messages in all."""
        found: list[list[list[object]]] = []
        while sum(len(batch) for batch in found) < messages:
            reported = receive_json(self.connection_string, "gated-seen")
            assert reported, f"only {found} were reported"
            found += [report["messages"] for report in reported]
        return found

    def assert_settled(self) -> None:
        """Every message completed: the queue empties, none is dead-lettered, no batch is given again."""
        _wait_until(lambda: self.broker.queue_depth("gated") == 0, "the queue to empty")
        assert self.broker.dead_letter_depth("gated") == 0
        assert receive_json(self.connection_string, "gated-seen", wait_seconds=1) == []


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GATED_WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def gated_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("gated_batch_app")
    (project / "host.json").write_text(json.dumps({"version": "2.0"}))
    (project / "gated_batch_app.py").write_text(GATED_BATCH_APP)
    return project


@pytest.fixture
def gated(gated_app: Path, tmp_path: Path) -> Iterator[Gated]:
    gate = tmp_path / "gate-open"
    with ServiceBusStandIn(GATED_QUEUES) as broker, \
            FunctionsHost(gated_app, app="gated_batch_app:app",
                          settings={"GATED_SERVICEBUS": broker.connection_string, "GATE_FILE": str(gate)}):
        try:
            yield Gated(broker, gate)
        finally:
            gate.touch()  # a held invocation lets go, so the host stops at once


def test_messages_that_arrive_while_a_batch_runs_are_given_together_as_the_next_batch(gated: Gated) -> None:
    gated.hold_a_batch()
    gated.send_one_by_one(["a", "b", "c"])
    gated.wait_until_the_host_holds(4)

    gated.open_gate()

    assert gated.batches(3) == [[["a", 1], ["b", 1], ["c", 1]]]
    gated.assert_settled()


def test_a_failed_batch_abandons_every_message_in_it_and_each_comes_back_once(gated: Gated) -> None:
    # "good" is not what failed, yet it is not completed either: it comes back with "fail".
    gated.hold_a_batch()
    gated.send_one_by_one(["fail", "good"])
    gated.wait_until_the_host_holds(3)

    gated.open_gate()

    failed, *redelivered = gated.batches(4)
    assert failed == [["fail", 1], ["good", 1]]
    # One batch or two: the host gives them back one by one, and the broker sends each down the link as it
    # takes it back, so the last may still be on its way when the next batch is formed.
    assert sorted(message for batch in redelivered for message in batch) == [["fail", 2], ["good", 2]]
    gated.assert_settled()


def test_lock_renewal_keeps_a_long_invocation_from_being_redelivered(broker: ServiceBusStandIn,
                                                                     host: FunctionsHost) -> None:
    send(broker.connection_string, "slow", json.dumps({"seconds": SLOW_LOCK_SECONDS * 4}))

    [seen] = receive_json(broker.connection_string, "outbox")

    assert seen["delivery_count"] == 1
    assert receive_json(broker.connection_string, "outbox", wait_seconds=SLOW_LOCK_SECONDS * 2) == []


def test_a_service_bus_output_binding_is_sent_after_the_function_returns(broker: ServiceBusStandIn,
                                                                         host: FunctionsHost) -> None:
    send(broker.connection_string, "via-output", "through the binding")

    [sent] = receive_json(broker.connection_string, "outbox")

    assert sent == {"body": "through the binding", "via": "output binding"}


def test_the_host_stops_within_a_few_seconds_while_receivers_wait(broker: ServiceBusStandIn) -> None:
    host = FunctionsHost(**_sample_host_arguments(broker))
    host.start()
    started = time.monotonic()

    host.stop()

    assert time.monotonic() - started < 10  # a bound against hanging, not a speed claim


def _sample_host_arguments(broker: ServiceBusStandIn) -> dict[str, object]:
    from tests.local_azure.sample_app.harness import APP_REFERENCE, SAMPLE_APP, SAMPLE_LOCAL_SETTINGS
    return {"project_dir": SAMPLE_APP, "app": APP_REFERENCE, "local_settings": SAMPLE_LOCAL_SETTINGS,
            "settings": {"SAMPLE_SERVICEBUS": broker.connection_string}}


MANY_QUEUES = [f"busy-{index}" for index in range(7)]
RECONNECT_WATCH_SECONDS = 5.0
MANY_TRIGGERS_APP = '''
import json
import os

import azure.functions as func
from azure.servicebus import ServiceBusClient, ServiceBusMessage

app = func.FunctionApp()


def _handled(queue: str, msg: func.ServiceBusMessage) -> None:
    with ServiceBusClient.from_connection_string(os.environ["SAMPLE_SERVICEBUS"]) as client, \\
            client.get_queue_sender("handled") as sender:
        sender.send_messages(ServiceBusMessage(json.dumps({"body": queue})))

''' + "".join(f'''
@app.service_bus_queue_trigger(arg_name="msg", queue_name="{queue}", connection="SAMPLE_SERVICEBUS")
def handle_{index}(msg: func.ServiceBusMessage) -> None:
    _handled("{queue}", msg)
''' for index, queue in enumerate(MANY_QUEUES))


def test_seven_triggers_with_eight_concurrent_calls_start_without_reconnecting(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The production app's shape: seven queue triggers, host.json maxConcurrentCalls 8. Every
    # receiver must connect on the first try, and a message on each queue must reach its function.
    (tmp_path / "host.json").write_text(json.dumps(
        {"version": "2.0", "extensions": {"serviceBus": {"maxConcurrentCalls": 8}}}))
    (tmp_path / "many_triggers_app.py").write_text(MANY_TRIGGERS_APP)
    caplog.set_level("WARNING")
    with ServiceBusStandIn([QueueSettings(name) for name in [*MANY_QUEUES, "handled"]]) as stand_in:
        host = FunctionsHost(tmp_path, app="many_triggers_app:app",
                             settings={"SAMPLE_SERVICEBUS": stand_in.connection_string})
        host.start()
        try:
            for queue in MANY_QUEUES:
                send(stand_in.connection_string, queue, "work")
            handled = receive_json(stand_in.connection_string, "handled", count=len(MANY_QUEUES), wait_seconds=30)
            time.sleep(RECONNECT_WATCH_SECONDS)  # past the SDK's one-second connect timeout, and then some
        finally:
            host.stop()

    reconnects = [record.getMessage() for record in caplog.records if "reconnecting" in record.getMessage()]
    assert reconnects == []
    assert sorted(message["body"] for message in handled) == MANY_QUEUES
