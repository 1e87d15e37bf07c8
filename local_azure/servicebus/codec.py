"""AMQP message bytes in and out: batches on arrival, broker annotations on delivery.

The SDK sends a list of messages as one transfer of message format 0x80013700 whose body is one data
section per encoded message. Proton's Python binding does not expose a delivery's message format, so
a transfer is read as a batch when every body section is a data section that itself holds a complete
AMQP message (starts with a section descriptor and decodes). A plain message whose body is a single
encoded AMQP message would be misread; the SDK never sends one.
"""

from __future__ import annotations

import datetime as dt
import uuid

import proton

from .entity import StoredMessage

HEADER_SECTION = 0x70
MAX_UINT = 2**32
DATA_SECTION = 0x75
FIRST_SECTION, LAST_SECTION = 0x70, 0x78  # header .. footer

SEQUENCE_NUMBER = proton.symbol("x-opt-sequence-number")
ENQUEUED_TIME = proton.symbol("x-opt-enqueued-time")
LOCKED_UNTIL = proton.symbol("x-opt-locked-until")
LOCK_TOKEN = proton.symbol("x-opt-lock-token")
SCHEDULED_ENQUEUE_TIME = proton.symbol("x-opt-scheduled-enqueue-time")
DEAD_LETTER_SOURCE = proton.symbol("x-opt-deadletter-source")
MESSAGE_STATE = proton.symbol("x-opt-message-state")
MESSAGE_STATE_VALUES = {"available": 0, "locked": 0, "deferred": 1, "scheduled": 2}


class MalformedMessageError(ValueError):
    """Bytes that are not an AMQP message (`amqp:decode-error`)."""


def _sections(raw: bytes) -> list[tuple[int, object]]:
    return [(code, value) for code, value, _, _ in _spans(raw)]


def _spans(raw: bytes) -> list[tuple[int, object, int, int]]:
    """Each top-level section: descriptor code, value, start and end offsets."""
    data = proton.Data()
    sections: list[tuple[int, object, int, int]] = []
    offset = 0
    while offset < len(raw):
        data.clear()
        try:
            used = data.decode(raw[offset:])
        except proton.DataException as error:
            raise MalformedMessageError(str(error)) from error
        if used <= 0:
            raise MalformedMessageError("truncated AMQP section")
        data.rewind()
        data.next()
        value = data.get_object()
        code = value.descriptor if isinstance(value, proton.Described) else None
        if not isinstance(code, int):
            raise MalformedMessageError("an AMQP message section must be a described type")
        inner = value.value
        sections.append((int(code), bytes(inner) if isinstance(inner, memoryview) else inner, offset, offset + used))
        offset += used
    return sections


def _looks_like_message(payload: object) -> bool:
    if not isinstance(payload, bytes) or len(payload) < 3:
        return False
    if payload[0] != 0x00 or payload[1] != 0x53 or not FIRST_SECTION <= payload[2] <= LAST_SECTION:
        return False
    try:
        _sections(payload)
    except MalformedMessageError:
        return False
    return True


def decode_transfer(raw: bytes) -> list[proton.Message]:
    """The messages in one transfer: one, or every message of an SDK batch."""
    sections = _sections(raw)
    bodies = [(code, value) for code, value in sections if code >= DATA_SECTION and code not in (0x78,)]
    if bodies and all(code == DATA_SECTION for code, _ in bodies) and all(_looks_like_message(v) for _, v in bodies):
        return [_decode_one(bytes(value)) for _, value in bodies]  # type: ignore[arg-type]
    return [_decode_one(raw)]


def _decode_one(raw: bytes) -> proton.Message:
    message = proton.Message()
    try:
        message.decode(raw)
    except proton.MessageException as error:
        raise MalformedMessageError(str(error)) from error
    if isinstance(message.body, memoryview):  # a view into proton's decode buffer: keep a copy
        message.body = bytes(message.body)
    return message


def decode_message(raw: bytes) -> proton.Message:
    return _decode_one(raw)


def scheduled_time(message: proton.Message) -> float | None:
    value = (message.annotations or {}).get(SCHEDULED_ENQUEUE_TIME)
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return int(value) / 1000.0


def _timestamp(seconds: float) -> proton.timestamp:
    return proton.timestamp(int(seconds * 1000))


def _header(message: proton.Message, delivery_count: int, ttl_seconds: float | None) -> bytes:
    """A header with every field written: proton leaves out defaults, and the SDK then reads no delivery count."""
    data = proton.Data()
    data.put_described()
    data.enter()
    data.put_ulong(HEADER_SECTION)
    data.put_list()
    data.enter()
    data.put_bool(bool(message.durable))
    data.put_ubyte(int(message.priority))
    if ttl_seconds is not None and 0 < ttl_seconds * 1000 < MAX_UINT:
        data.put_uint(int(ttl_seconds * 1000))
    else:
        data.put_null()
    data.put_bool(bool(message.first_acquirer))
    data.put_uint(delivery_count)
    data.exit()
    data.exit()
    return bytes(data.encode())


def encode_delivery(stored: StoredMessage, *, state: str | None = None, with_lock_token: bool = False) -> bytes:
    """The bytes a receiver gets: the sender's message, a full header, and the broker's annotations."""
    message = outgoing(stored, state=state, with_lock_token=with_lock_token)
    encoded = bytes(message.encode())
    rest = b"".join(encoded[start:end] for code, _, start, end in _spans(encoded) if code != HEADER_SECTION)
    # The service stamps the effective time to live (the queue's default when the sender set none).
    ttl = stored.expires_at - stored.enqueued_at if stored.expires_at != float("inf") else message.ttl or None
    return _header(message, stored.delivery_count, ttl) + rest


def outgoing(stored: StoredMessage, *, state: str | None = None, with_lock_token: bool = False) -> proton.Message:
    """A copy of the stored message as the broker delivers it: header count and broker annotations."""
    message = _decode_one(bytes(stored.message.encode()))
    message.delivery_count = stored.delivery_count
    annotations = dict(message.annotations or {})
    annotations[SEQUENCE_NUMBER] = stored.sequence_number
    annotations[ENQUEUED_TIME] = _timestamp(stored.enqueued_at)
    if stored.locked_until:
        annotations[LOCKED_UNTIL] = _timestamp(stored.locked_until)
    if with_lock_token and stored.lock_token is not None:
        annotations[LOCK_TOKEN] = stored.lock_token
    if stored.dead_letter_source is not None:
        annotations[DEAD_LETTER_SOURCE] = stored.dead_letter_source
    annotations[MESSAGE_STATE] = MESSAGE_STATE_VALUES.get(state or stored.state.value, 0)
    message.annotations = annotations
    return message


def delivery_tag(lock_token: uuid.UUID | None) -> bytes:
    """The SDK reads the lock token from the delivery tag as `UUID(bytes_le=tag)`."""
    return (lock_token or uuid.uuid4()).bytes_le


def lock_token_from_tag(tag: bytes) -> uuid.UUID | None:
    if len(tag) != 16:
        return None
    return uuid.UUID(bytes_le=bytes(tag))
