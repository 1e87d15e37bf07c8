"""Bad input on the wire gets the service's answer, never a traceback or a hang.

These drive the stand-in with a plain AMQP 1.0 client (Qpid Proton's blocking API), because the SDK
never sends malformed requests.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import proton
import pytest
from proton.utils import BlockingConnection, LinkDetached

from local_azure.servicebus import QueueSettings, ServiceBusStandIn

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 5


@pytest.fixture
def stand_in() -> Iterator[ServiceBusStandIn]:
    with ServiceBusStandIn([QueueSettings("work")]) as server:
        yield server


@pytest.fixture
def connection(stand_in: ServiceBusStandIn) -> Iterator[BlockingConnection]:
    conn = BlockingConnection(f"amqp://127.0.0.1:{stand_in.port}", timeout=TIMEOUT, allowed_mechs="ANONYMOUS")
    try:
        yield conn
    finally:
        conn.close()


def request(connection: BlockingConnection, node: str, message: proton.Message) -> proton.Message:
    receiver = connection.create_receiver(node)
    sender = connection.create_sender(node)
    message.id = uuid.uuid4()
    message.reply_to = node
    sender.send(message)
    response = receiver.receive(timeout=TIMEOUT)
    receiver.accept()
    assert response.correlation_id == message.id
    return response


def put_token(properties: dict[str, object], body: object) -> proton.Message:
    return proton.Message(body=body, properties=properties)


def test_put_token_is_answered_with_202(connection: BlockingConnection) -> None:
    response = request(connection, "$cbs", put_token(
        {"operation": "put-token", "type": "jwt", "name": "sb://localhost/work"}, "header.payload.signature"))
    assert response.properties["status-code"] == 202


def test_put_token_without_an_audience_is_answered_with_400(connection: BlockingConnection) -> None:
    response = request(connection, "$cbs", put_token({"operation": "put-token", "type": "jwt"}, "token"))
    assert response.properties["status-code"] == 400
    assert "name" in response.properties["status-description"]


def test_put_token_without_a_token_is_answered_with_400(connection: BlockingConnection) -> None:
    response = request(connection, "$cbs", put_token(
        {"operation": "put-token", "type": "jwt", "name": "sb://localhost/work"}, None))
    assert response.properties["status-code"] == 400


def test_unknown_operation_on_cbs_is_answered_with_400(connection: BlockingConnection) -> None:
    response = request(connection, "$cbs", put_token({"operation": "delete-token"}, "token"))
    assert response.properties["status-code"] == 400


def test_unknown_management_operation_is_answered_with_501(connection: BlockingConnection) -> None:
    message = proton.Message(body={}, properties={"operation": "com.microsoft:get-rules"})
    response = request(connection, "work/$management", message)
    assert response.properties["statusCode"] == 501
    assert response.properties["errorCondition"] == "amqp:not-implemented"


def test_management_request_without_a_map_body_is_answered_with_400(connection: BlockingConnection) -> None:
    message = proton.Message(body="not a map", properties={"operation": "com.microsoft:renew-lock"})
    response = request(connection, "work/$management", message)
    assert response.properties["statusCode"] == 400
    assert response.properties["errorCondition"] == "com.microsoft:argument-error"


def test_renewing_an_unknown_lock_is_answered_with_410_lock_lost(connection: BlockingConnection) -> None:
    body = {"lock-tokens": proton.Array(proton.UNDESCRIBED, proton.Data.UUID, uuid.uuid4())}
    message = proton.Message(body=body, properties={"operation": "com.microsoft:renew-lock"})
    response = request(connection, "work/$management", message)
    assert response.properties["statusCode"] == 410
    assert response.properties["errorCondition"] == "com.microsoft:message-lock-lost"


def test_cancelling_an_unknown_scheduled_message_is_answered_with_404(connection: BlockingConnection) -> None:
    body = {"sequence-numbers": proton.Array(proton.UNDESCRIBED, proton.Data.LONG, 999)}
    message = proton.Message(body=body, properties={"operation": "com.microsoft:cancel-scheduled-message"})
    response = request(connection, "work/$management", message)
    assert response.properties["statusCode"] == 404
    assert response.properties["errorCondition"] == "com.microsoft:message-not-found"


def test_attaching_to_an_unknown_queue_is_refused_with_not_found(connection: BlockingConnection) -> None:
    with pytest.raises(LinkDetached) as raised:
        connection.create_receiver("no-such-queue")
    assert "amqp:not-found" in str(raised.value)


def test_management_node_of_an_unknown_queue_is_refused_with_not_found(connection: BlockingConnection) -> None:
    with pytest.raises(LinkDetached) as raised:
        connection.create_sender("no-such-queue/$management")
    assert "amqp:not-found" in str(raised.value)


def test_sending_to_a_dead_letter_queue_is_refused(connection: BlockingConnection) -> None:
    with pytest.raises(LinkDetached):
        connection.create_sender("work/$DeadLetterQueue")


def test_a_plain_amqp_message_is_queued(stand_in: ServiceBusStandIn, connection: BlockingConnection) -> None:
    connection.create_sender("work").send(proton.Message(body="from a plain client", id="p-1"))
    assert stand_in.queue_depth("work") == 1
    receiver = connection.create_receiver("work")
    message = receiver.receive(timeout=TIMEOUT)
    assert message.body == "from a plain client"
    assert message.annotations["x-opt-sequence-number"] == 1
    receiver.accept()
    with pytest.raises(proton.Timeout):  # pumps the client so the settlement goes out
        connection.wait(lambda: False, timeout=0.2)
    deadline = time.monotonic() + TIMEOUT
    while stand_in.queue_depth("work") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stand_in.queue_depth("work") == 0


def test_undecodable_message_is_rejected_with_decode_error(
        stand_in: ServiceBusStandIn, connection: BlockingConnection) -> None:
    sender = connection.create_sender("work")
    delivery = sender.link.delivery("undecodable")
    sender.link.send(b"\xff\x00 not AMQP")
    sender.link.advance()
    connection.wait(lambda: bool(delivery.remote_state), timeout=TIMEOUT)
    assert delivery.remote_state == proton.Disposition.REJECTED
    assert delivery.remote.condition.name == "amqp:decode-error"
    assert stand_in.queue_depth("work") == 0
