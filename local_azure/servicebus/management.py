"""The request/response nodes: `$cbs` (claims-based security) and `<entity>/$management`.

Requests and answers follow the service: `$cbs` answers with `status-code`/`status-description`,
`$management` with `statusCode`/`statusDescription` and, on failure, `errorCondition`; the response's
correlation id is the request's message id. Bodies are AMQP maps with the keys the SDK reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import proton

from . import codec
from .entity import Entity, LockLostError, MessageNotFoundError

OK, ACCEPTED, NO_CONTENT = 200, 202, 204
BAD_REQUEST, NOT_FOUND, GONE, NOT_IMPLEMENTED = 400, 404, 410, 501

LOCK_LOST = "com.microsoft:message-lock-lost"
MESSAGE_NOT_FOUND = "com.microsoft:message-not-found"
ARGUMENT_ERROR = "com.microsoft:argument-error"


class RequestError(Exception):
    def __init__(self, status: int, condition: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.condition = condition
        self.description = description


@dataclass
class Response:
    status: int
    description: str
    body: object = None
    condition: str | None = None


def response_message(request: proton.Message, response: Response, *, cbs: bool) -> proton.Message:
    code_key, description_key = ("status-code", "status-description") if cbs else ("statusCode", "statusDescription")
    properties: dict[str, object] = {code_key: proton.int32(response.status), description_key: response.description}
    if response.condition is not None:
        properties["errorCondition"] = proton.symbol(response.condition)
    message = proton.Message(body=response.body, properties=properties, correlation_id=request.id)
    message.inferred = False  # the body is an AMQP value (a map), never a data section
    return message


# ---- $cbs ---------------------------------------------------------------------------------------
SAS_TOKEN_TYPE = "servicebus.windows.net:sastoken"  # the SDK sends SAS tokens typed "jwt"; the body tells


def put_token(request: proton.Message, entity_exists: Callable[[str], bool]) -> Response:
    """Any SAS or JWT token is accepted locally; a malformed request gets 400 as from the service.

    A SAS token for an entity that does not exist is refused with 404 at put-token, as the service does
    (the SDK raises `ServiceBusAuthenticationError`); with a JWT the missing entity shows at link attach.
    """
    props = request.properties or {}
    operation = props.get("operation")
    if operation != "put-token":
        return Response(BAD_REQUEST, f"The operation '{operation}' is not supported by $cbs; expected 'put-token'.")
    for required in ("name", "type"):
        if not isinstance(props.get(required), str) or not props.get(required):
            return Response(BAD_REQUEST, f"The put-token request is missing the '{required}' application property.")
    if not isinstance(request.body, str) or not request.body:
        return Response(BAD_REQUEST, "The put-token request must carry the token as a string body.")
    audience = str(props["name"])
    path = audience.split("://", 1)[1].split("/", 1)[1] if audience.count("/") >= 3 else ""
    path = path.strip("/").removesuffix("/$management")
    is_sas = props["type"] == SAS_TOKEN_TYPE or request.body.startswith("SharedAccessSignature ")
    if is_sas and path and not entity_exists(path):
        return Response(NOT_FOUND, f"The messaging entity '{audience}' could not be found. To know more visit "
                                   "https://aka.ms/sbResourceMgrExceptions.")
    return Response(ACCEPTED, "Accepted")


# ---- $management --------------------------------------------------------------------------------
Now = Callable[[], float]


def _body(request: proton.Message) -> Mapping[Any, Any]:
    body = request.body
    if not isinstance(body, Mapping):
        raise RequestError(BAD_REQUEST, ARGUMENT_ERROR, "The request body must be an AMQP map.")
    return body


def _list(value: object, key: str) -> list[Any]:
    if isinstance(value, proton.Array):
        return list(value.elements)
    if isinstance(value, list | tuple):
        return list(value)
    raise RequestError(BAD_REQUEST, ARGUMENT_ERROR, f"The request body must hold an array '{key}'.")


def _lock_tokens(body: Mapping[Any, Any]) -> list[uuid.UUID]:
    tokens = _list(body.get("lock-tokens"), "lock-tokens")
    parsed: list[uuid.UUID] = []
    for token in tokens:
        try:
            parsed.append(token if isinstance(token, uuid.UUID) else uuid.UUID(str(token)))
        except ValueError as error:
            raise RequestError(BAD_REQUEST, ARGUMENT_ERROR, f"'{token}' is not a lock token.") from error
    return parsed


def _sequence_numbers(body: Mapping[Any, Any]) -> list[int]:
    return [int(n) for n in _list(body.get("sequence-numbers"), "sequence-numbers")]


class ManagementNode:
    """Executes `<entity>/$management` operations against one entity."""

    def __init__(self, entity: Entity, now: Now) -> None:
        self.entity = entity
        self.now = now
        self._operations: dict[str, Callable[[Mapping[Any, Any]], Response]] = {
            "com.microsoft:renew-lock": self._renew_lock,
            "com.microsoft:peek-message": self._peek,
            "com.microsoft:schedule-message": self._schedule,
            "com.microsoft:cancel-scheduled-message": self._cancel_scheduled,
            "com.microsoft:update-disposition": self._update_disposition,
            "com.microsoft:receive-by-sequence-number": self._receive_by_sequence_number,
        }

    def execute(self, request: proton.Message) -> Response:
        operation = (request.properties or {}).get("operation")
        handler = self._operations.get(str(operation))
        if handler is None:
            return Response(NOT_IMPLEMENTED, f"The operation '{operation}' is not supported by this entity.",
                            condition="amqp:not-implemented")
        try:
            return handler(_body(request))
        except LockLostError as error:
            return Response(GONE, str(error), condition=LOCK_LOST)
        except MessageNotFoundError as error:
            return Response(NOT_FOUND, str(error), condition=MESSAGE_NOT_FOUND)
        except RequestError as error:
            return Response(error.status, error.description, condition=error.condition)
        except (KeyError, TypeError, ValueError, codec.MalformedMessageError) as error:
            return Response(BAD_REQUEST, f"The request is malformed: {error}", condition=ARGUMENT_ERROR)

    def _renew_lock(self, body: Mapping[Any, Any]) -> Response:
        now = self.now()
        expirations = [proton.timestamp(int(self.entity.renew(token, now) * 1000)) for token in _lock_tokens(body)]
        return Response(OK, "OK", {"expirations": proton.Array(proton.UNDESCRIBED, proton.Data.TIMESTAMP,
                                                                  *expirations)})

    def _peek(self, body: Mapping[Any, Any]) -> Response:
        start = int(body.get("from-sequence-number", 1))
        count = int(body.get("message-count", 1))
        found = self.entity.peek(start, count, self.now())
        if not found:
            return Response(NO_CONTENT, "No messages to peek.")
        return Response(OK, "OK", {"messages": [{"message": codec.encode_delivery(m)} for m in found]})

    def _schedule(self, body: Mapping[Any, Any]) -> Response:
        entries = _list(body.get("messages"), "messages")
        now = self.now()
        decoded = [codec.decode_message(bytes(entry["message"])) for entry in entries]
        sequence_numbers: list[int] = []
        for message in decoded:
            when = codec.scheduled_time(message)
            sequence_numbers.append(self.entity.enqueue(message, now, when).sequence_number)
        return Response(OK, "OK", {"sequence-numbers": proton.Array(proton.UNDESCRIBED, proton.Data.LONG,
                                                                       *sequence_numbers)})

    def _cancel_scheduled(self, body: Mapping[Any, Any]) -> Response:
        self.entity.cancel_scheduled(_sequence_numbers(body))
        return Response(OK, "OK")

    def _update_disposition(self, body: Mapping[Any, Any]) -> Response:
        status = body.get("disposition-status")
        now = self.now()
        for token in _lock_tokens(body):
            if status == "completed":
                self.entity.complete(token, now)
            elif status == "abandoned":
                self.entity.abandon(token, now, body.get("properties-to-modify"))
            elif status == "defered":  # sic: the protocol's spelling
                self.entity.defer(token, now, body.get("properties-to-modify"))
            elif status == "suspended":
                self.entity.dead_letter_locked(token, now, body.get("deadletter-reason"),
                                               body.get("deadletter-description"), body.get("properties-to-modify"))
            else:
                raise RequestError(BAD_REQUEST, ARGUMENT_ERROR, f"Unknown disposition-status '{status}'.")
        return Response(OK, "OK")

    def _receive_by_sequence_number(self, body: Mapping[Any, Any]) -> Response:
        delete = int(body.get("receiver-settle-mode", 1)) == 0  # 0 = first: receive-and-delete
        found = self.entity.lock_deferred(_sequence_numbers(body), self.now(), delete=delete)
        messages = []
        for stored in found:
            entry: dict[str, object] = {"message": codec.encode_delivery(stored, state="deferred")}
            if stored.lock_token is not None:
                entry["lock-token"] = stored.lock_token
            messages.append(entry)
        return Response(OK, "OK", {"messages": messages})
