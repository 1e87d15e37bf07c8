"""The AMQP 1.0 side: links to queues, `$cbs` and `$management`, driven by Qpid Proton's reactor.

Every callback runs on the reactor thread and takes the broker lock, so tests may inspect queues from
other threads. Time-based changes (lock expiry, scheduled messages, TTL) are applied by a short
periodic tick, which is also where a stop request from another thread is noticed.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import proton
from proton import Condition, Delivery, Disposition, Endpoint, Link, Terminus
from proton.reactor import Container

from . import codec, management
from .config import QueueSettings
from .entity import DEAD_LETTER_SUFFIX, Entity, LockLostError

_LOG = logging.getLogger(__name__)

CBS_NODE = "$cbs"
MANAGEMENT_SUFFIX = "/$management"
SEND_CREDIT = 100
TICK_SECONDS = 0.05
# Proton listens with a backlog of 10. The Functions host opens a connection per trigger function
# at once, and the SDK gives a TCP connect one second: a SYN dropped by a full accept queue is
# retried only after that, so the client fails with "timed out" (amqp:socket-error).
LISTEN_BACKLOG = 512

NOT_FOUND = "amqp:not-found"
MESSAGE_SIZE_EXCEEDED = "amqp:link:message-size-exceeded"
# A Standard namespace takes messages (and batches) of up to 256 KB; Premium up to 100 MB per entity.
STANDARD_MAX_MESSAGE_BYTES = 256 * 1024
SESSION_FILTER = proton.symbol("com.microsoft:session-filter")
TRACKING_ID = proton.symbol("com.microsoft:tracking-id")
DECODE_ERROR = "amqp:decode-error"


Callback = TypeVar("Callback", bound=Callable[..., None])


class PeerGoneFilter(logging.Filter):
    """Demotes Proton's "Couldn't send/recv" to DEBUG when the error only says the client went away.

    A client may close its socket as soon as it has sent its close frame; the broker's answering
    frames then meet a broken pipe. Proton logs that at ERROR, but it closes the transport
    either way, and `on_transport_closed` forgets the client's links. Other socket errors stay errors.
    """

    PEER_GONE = ("BrokenPipeError", "ConnectionResetError", "ConnectionAbortedError")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text.startswith(("Couldn't send", "Couldn't recv")) and any(name in text for name in self.PEER_GONE):
            _LOG.debug("a client went away: %s", text)
            return False
        return True


def quiet_peer_gone_errors() -> None:
    proton_logger = logging.getLogger("proton")
    if not any(isinstance(existing, PeerGoneFilter) for existing in proton_logger.filters):
        proton_logger.addFilter(PeerGoneFilter())


def guarded(callback: Callback) -> Callback:
    """A bug in one callback must not end the reactor (and with it every client's connection)."""

    @functools.wraps(callback)
    def run(self: Broker, event: proton.Event) -> None:
        try:
            callback(self, event)
        except Exception:
            _LOG.exception("Service Bus stand-in: %s failed", callback.__name__)
            link = getattr(event, "link", None)
            if link is not None and link.state & Endpoint.LOCAL_ACTIVE:
                link.condition = Condition("amqp:internal-error", "The stand-in failed to handle this request.")
                link.close()

    return run  # type: ignore[return-value]


def entity_path(address: str | None) -> str:
    """`amqps://ns.servicebus.windows.net/q` and `q` both name queue `q`."""
    if not address:
        return ""
    if "://" in address:
        address = address.split("://", 1)[1]
        address = address.split("/", 1)[1] if "/" in address else ""
    return address.strip("/")


@dataclass
class Consumer:
    link: Link
    entity: Entity
    receive_and_delete: bool


@dataclass
class ResponseLink:
    link: Link
    pending: deque[proton.Message] = field(default_factory=deque)


class Broker(proton.Handler):
    def __init__(self, queues: list[QueueSettings], host: str, port: int,
                 max_message_bytes: int = STANDARD_MAX_MESSAGE_BYTES) -> None:
        super().__init__()
        self.host = host
        self.max_message_bytes = max_message_bytes
        self.requested_port = port
        self.port = 0
        self.lock = threading.RLock()
        self.entities: dict[str, Entity] = {}
        for settings in queues:
            queue = Entity.queue(settings)
            assert queue.dead_letter is not None
            self.entities[queue.path.lower()] = queue
            self.entities[queue.dead_letter.path.lower()] = queue.dead_letter
        self.listening = threading.Event()
        self.failure: BaseException | None = None
        self.stop_requested = threading.Event()
        # Queues whose incoming messages get no outcome (tests: a sender stuck mid-send, then killed).
        self.held_sends: set[str] = set()
        self.held_deliveries: list[Delivery] = []
        self._consumers: dict[Link, Consumer] = {}
        self._responders: dict[tuple[proton.Connection, str], ResponseLink] = {}
        self._container: Container | None = None
        self._acceptor: Any = None
        quiet_peer_gone_errors()

    # ---- lifecycle -----------------------------------------------------------------------------
    @guarded
    def on_reactor_init(self, event: proton.Event) -> None:
        container = event.container
        self._container = container
        try:
            self._acceptor = container.listen(f"{self.host}:{self.requested_port}")
            # Listening again on a listening socket only resizes its accept queue.
            self._acceptor._selectable.listen(LISTEN_BACKLOG)
            self.port = int(self._acceptor._selectable.getsockname()[1])
        except Exception as error:  # the caller's start() reports it
            self.failure = error
            self.listening.set()
            container.stop()
            return
        container.schedule(TICK_SECONDS, self)
        self.listening.set()

    @guarded
    def on_timer_task(self, event: proton.Event) -> None:
        if self.stop_requested.is_set():
            self._shutdown(event.container)
            return
        with self.lock:
            now = time.time()
            for entity in self.entities.values():
                if entity.sweep(now):
                    self._pump_entity(entity)
        event.container.schedule(TICK_SECONDS, self)

    def _shutdown(self, container: Container) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
        container.stop()

    @guarded
    def on_connection_bound(self, event: proton.Event) -> None:
        sasl = event.transport.sasl()
        sasl.allow_insecure_mechs = True  # plain AMQP on loopback, as the emulator does
        sasl.allowed_mechs("ANONYMOUS PLAIN MSSBCBS")

    # ---- endpoints -----------------------------------------------------------------------------
    @guarded
    def on_connection_remote_open(self, event: proton.Event) -> None:
        if event.connection.state & Endpoint.LOCAL_UNINIT:
            event.connection.container = "local-servicebus"
            event.connection.open()

    @guarded
    def on_session_remote_open(self, event: proton.Event) -> None:
        if event.session.state & Endpoint.LOCAL_UNINIT:
            event.session.open()

    @guarded
    def on_connection_remote_close(self, event: proton.Event) -> None:
        with self.lock:
            self._forget(lambda link: link.connection == event.connection)
        event.connection.close()

    @guarded
    def on_session_remote_close(self, event: proton.Event) -> None:
        with self.lock:
            self._forget(lambda link: link.session == event.session)
        event.session.close()

    @guarded
    def on_link_remote_close(self, event: proton.Event) -> None:
        with self.lock:
            self._forget(lambda link: link == event.link)
        event.link.close()

    @guarded
    def on_transport_closed(self, event: proton.Event) -> None:
        connection = event.connection
        if connection is not None:
            with self.lock:
                self._forget(lambda link: link.connection == connection)

    def _forget(self, matches: Any) -> None:
        # Locks held by a vanished consumer stay until they expire, as in the service.
        for link in [link for link in self._consumers if matches(link)]:
            del self._consumers[link]
        for key in [key for key, value in self._responders.items() if matches(value.link)]:
            del self._responders[key]

    @guarded
    def on_link_remote_open(self, event: proton.Event) -> None:
        link = event.link
        if not link.state & Endpoint.LOCAL_UNINIT:
            return
        with self.lock:
            if link.is_sender:
                self._attach_outgoing(link)
            else:
                self._attach_incoming(link)

    def _refuse(self, link: Link, address: str, condition: str = NOT_FOUND, description: str | None = None) -> None:
        # The service answers an attach to an unknown entity with an attach, then a detach carrying the error.
        link.condition = Condition(condition, description or (
            f"The messaging entity 'sb://localhost/{address}' could not be found. "
            "To know more visit https://aka.ms/sbResourceMgrExceptions."))
        # Echo the termini: the SDK treats an attach without them as a broken link, not a missing entity.
        _copy_terminus(link.source, link.remote_source)
        _copy_terminus(link.target, link.remote_target)
        link.open()
        link.close()

    def _attach_incoming(self, link: Link) -> None:
        """The client sends: to a queue, to `$cbs`, or to an entity's `$management` node."""
        address = entity_path(link.remote_target.address)
        if address == CBS_NODE or address.endswith(MANAGEMENT_SUFFIX):
            node_entity = address[: -len(MANAGEMENT_SUFFIX)] if address != CBS_NODE else None
            if node_entity is not None and node_entity.lower() not in self.entities:
                self._refuse(link, node_entity)
                return
        elif address.lower() not in self.entities or address.lower().endswith(DEAD_LETTER_SUFFIX.lower()):
            self._refuse(link, address)
            return
        _copy_terminus(link.target, link.remote_target)
        _copy_terminus(link.source, link.remote_source)
        link.rcv_settle_mode = Link.RCV_FIRST
        # The service advertises its limit on the attach: the SDK sizes its batches by it and refuses a
        # batch that would outgrow it before sending (MessageSizeExceededError).
        link.max_message_size = self.max_message_bytes
        link.open()
        link.flow(SEND_CREDIT)

    def _attach_outgoing(self, link: Link) -> None:
        """The client receives: from a queue or dead-letter queue, or responses from `$cbs`/`$management`."""
        address = entity_path(link.remote_source.address)
        if address == CBS_NODE or address.endswith(MANAGEMENT_SUFFIX):
            node_entity = address[: -len(MANAGEMENT_SUFFIX)] if address != CBS_NODE else None
            if node_entity is not None and node_entity.lower() not in self.entities:
                self._refuse(link, node_entity)
                return
            self._open_sender(link)
            self._responders[(link.connection, address.lower())] = ResponseLink(link)
            return
        entity = self.entities.get(address.lower())
        if entity is None:
            self._refuse(link, address)
            return
        if SESSION_FILTER in _filters(link.remote_source):
            self._refuse(link, address, condition="amqp:not-allowed", description=(
                f"It is not possible for an entity that does not require sessions ('{address}') to create a "
                "session receiver: the local stand-in has no session-enabled queues."))
            return
        self._open_sender(link)
        receive_and_delete = link.remote_snd_settle_mode == Link.SND_SETTLED
        self._consumers[link] = Consumer(link, entity, receive_and_delete)

    @staticmethod
    def _open_sender(link: Link) -> None:
        _copy_terminus(link.source, link.remote_source)
        _copy_terminus(link.target, link.remote_target)
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        link.open()

    # ---- credit and deliveries -----------------------------------------------------------------
    @guarded
    def on_link_flow(self, event: proton.Event) -> None:
        link = event.link
        with self.lock:
            if link in self._consumers:
                self._pump_consumer(self._consumers[link])
                if link.drain_mode and link.credit > 0:
                    link.drained()
            else:
                for responder in self._responders.values():
                    if responder.link == link:
                        self._flush(responder)

    @guarded
    def on_delivery(self, event: proton.Event) -> None:
        delivery = event.delivery
        link = event.link
        with self.lock:
            if link.is_receiver:
                if delivery.readable and not delivery.partial:
                    self._incoming(link, delivery)
            else:
                self._outcome(link, delivery)

    def _incoming(self, link: Link, delivery: Delivery) -> None:
        raw = link.recv(delivery.pending) or b""
        link.advance()
        if not link.state & Endpoint.LOCAL_ACTIVE:  # a refused link: its detach already carries the error
            delivery.settle()
            return
        address = entity_path(link.target.address)
        try:
            if address == CBS_NODE:
                request = codec.decode_message(raw)
                response = management.put_token(request, lambda path: path.lower() in self.entities)
                self._respond(link.connection, request, response, CBS_NODE, cbs=True)
            elif address.endswith(MANAGEMENT_SUFFIX):
                request = codec.decode_message(raw)
                entity = self.entities[address[: -len(MANAGEMENT_SUFFIX)].lower()]
                response = management.ManagementNode(entity, time.time).execute(request)
                reply_to = entity_path(request.reply_to) or address
                self._respond(link.connection, request, response, reply_to, cbs=False)
                self._pump_entity(entity)
            elif len(raw) > self.max_message_bytes:
                # A sender that ignored the advertised limit: refused, as the service does, which the SDK
                # raises as MessageSizeExceededError. Nothing of it is enqueued.
                delivery.local.condition = Condition(MESSAGE_SIZE_EXCEEDED, (
                    f"The received message (size: {len(raw)} bytes) exceeds the limit ({self.max_message_bytes}"
                    " bytes) currently allowed on the link."), _tracking_info())
                delivery.update(Disposition.REJECTED)
                delivery.settle()
                return
            elif address.lower() in self.held_sends:
                self.held_deliveries.append(delivery)  # never settled: its sender waits for an outcome
            else:
                self._enqueue(self.entities[address.lower()], raw)
        except codec.MalformedMessageError as error:
            delivery.local.condition = Condition(DECODE_ERROR, f"The message could not be decoded: {error}",
                                                 _tracking_info())
            delivery.update(Disposition.REJECTED)
            delivery.settle()
        else:
            if delivery not in self.held_deliveries:
                delivery.update(Disposition.ACCEPTED)
                delivery.settle()
        if link.credit < SEND_CREDIT // 2:
            link.flow(SEND_CREDIT - link.credit)

    def _enqueue(self, entity: Entity, raw: bytes) -> None:
        now = time.time()
        for message in codec.decode_transfer(raw):
            message_id = None if message.id is None else str(message.id)
            if entity.is_duplicate(message_id, now):
                continue  # accepted and dropped, as the service does
            entity.enqueue(message, now, codec.scheduled_time(message))
        self._pump_entity(entity)

    def _respond(self, connection: proton.Connection, request: proton.Message, response: management.Response,
                 node: str, *, cbs: bool) -> None:
        responder = self._responders.get((connection, node.lower()))
        if responder is None:
            _LOG.warning("no response link for %s; dropping the response to %s", node, request.id)
            return
        responder.pending.append(management.response_message(request, response, cbs=cbs))
        self._flush(responder)

    @staticmethod
    def _flush(responder: ResponseLink) -> None:
        link = responder.link
        while responder.pending and link.credit > 0:
            message = responder.pending.popleft()
            delivery = link.delivery(uuid.uuid4().bytes)
            link.send(message.encode())
            link.advance()
            if link.snd_settle_mode == Link.SND_SETTLED:
                delivery.settle()

    def _pump_entity(self, entity: Entity) -> None:
        for consumer in list(self._consumers.values()):
            if consumer.entity is entity:
                self._pump_consumer(consumer)

    def _pump_consumer(self, consumer: Consumer) -> None:
        link = consumer.link
        entity = consumer.entity
        while link.credit > 0 and link.state & Endpoint.LOCAL_ACTIVE:
            now = time.time()
            stored = entity.take_next(now) if consumer.receive_and_delete else entity.lock_next(now)
            if stored is None:
                return
            encoded = codec.encode_delivery(stored)
            delivery = link.delivery(codec.delivery_tag(stored.lock_token))
            # Proton's binding reads tags back as UTF-8 text, so the lock token rides on the delivery instead.
            delivery.sb_lock_token = stored.lock_token
            link.send(encoded)
            link.advance()
            if consumer.receive_and_delete:
                delivery.settle()

    def _outcome(self, link: Link, delivery: Delivery) -> None:
        """A receiver settled a delivery: apply it, then echo the outcome (or the lock-lost error) and settle."""
        consumer = self._consumers.get(link)
        if consumer is None or consumer.receive_and_delete:
            if delivery.remote_state or delivery.settled:
                delivery.settle()
            return
        state = delivery.remote_state
        if not state:
            return
        token: uuid.UUID | None = getattr(delivery, "sb_lock_token", None)
        entity = consumer.entity
        remote = delivery.remote
        try:
            if token is None:
                raise LockLostError("The delivery carries no lock token.")
            _apply_outcome(entity, token, state, remote)
        except LockLostError as error:
            delivery.local.condition = Condition(management.LOCK_LOST, str(error))
            delivery.update(Disposition.REJECTED)
        else:
            if state == Disposition.MODIFIED:
                delivery.local.failed = remote.failed
                delivery.local.undeliverable = remote.undeliverable
            delivery.update(state)
        delivery.settle()
        self._pump_entity(entity)


def _apply_outcome(entity: Entity, token: uuid.UUID, state: int, remote: Disposition) -> None:
    now = time.time()
    if state == Disposition.ACCEPTED:
        entity.complete(token, now)
    elif state == Disposition.RELEASED:
        entity.release(token, now)
    elif state == Disposition.REJECTED:
        info = _condition_info(remote.condition)
        entity.dead_letter_locked(token, now, info.get("DeadLetterReason"), info.get("DeadLetterErrorDescription"))
    elif state == Disposition.MODIFIED:
        properties = {str(key): value for key, value in dict(remote.annotations or {}).items()}
        if remote.undeliverable:
            entity.defer(token, now, properties)
        else:
            entity.abandon(token, now, properties)


def _tracking_info() -> dict[proton.symbol, str]:
    # The service's errors carry an info map (a tracking id); the SDK reads the condition's third field
    # unconditionally and fails on a rejection without one.
    return {TRACKING_ID: str(uuid.uuid4())}


def _condition_info(condition: Condition | None) -> dict[str, str | None]:
    if condition is None:
        return {}
    info = condition.info or {}
    return {str(key): (None if value is None else str(value)) for key, value in dict(info).items()}


def _filters(terminus: Terminus) -> dict[Any, Any]:
    data = terminus.filter
    data.rewind()
    if not data.next():
        return {}
    value = data.get_object()
    return dict(value) if isinstance(value, dict) else {}


def _copy_terminus(local: Terminus, remote: Terminus) -> None:
    local.copy(remote)
