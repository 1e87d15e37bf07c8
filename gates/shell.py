"""What every gate does around a decision: load, decide, persist on the ETag, emit the outbox."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

import azure.functions as func

from shared.core.change import Change
from shared.core.errors import ConcurrencyConflict
from shared.core.messages import MalformedMessage, StageMessage, decode
from shared.core.model import Run
from shared.services import Services, ServicesProvider
from shared.topology import SERVICE_BUS_CONNECTION, Queue

logger = logging.getLogger("sre_gates")
MAX_CONFLICT_RETRIES = 8


def flush(services: Services, run_id: str) -> None:
    """Send what the run's outbox holds, then clear it. Safe to repeat: message ids are stable."""
    pending = services.runs.pending_messages(run_id)
    if not pending:
        return
    services.bus.send(pending)
    services.runs.delete_messages(run_id, [m.message_id for m in pending])


def record(services: Services, change: Change, stage: str) -> None:
    if services.audit_sink is None:
        return
    for event in change.audit:
        services.audit_sink.emit(change.run, event, stage)


def create(services: Services, change: Change, stage: str) -> bool:
    created = services.runs.create_run(change)
    if created:
        record(services, change, stage)
    flush(services, change.run.run_id)
    return created


def transact(services: Services, run_id: str, decide: Callable[[Run], Change | None], stage: str, *,
             sends_may_wait: bool = False) -> Run | None:
    """Decide on the latest run and write the change on its ETag, retrying on a concurrent writer.

    When the decision changes nothing (a duplicate, or the run has moved on), whatever the outbox
    still holds from an earlier, interrupted delivery is sent now. With `sends_may_wait` (an HTTP
    caller, which no queue will redeliver) a failed send after the commit is left to the outbox relay.
    """
    for _ in range(MAX_CONFLICT_RETRIES):
        run = services.runs.get_run(run_id)
        if run is None:
            return None
        change = decide(run)
        if change is None:
            flush(services, run_id)
            return run
        try:
            committed = services.runs.commit(change)
        except ConcurrencyConflict:
            logger.info("run %s changed under %s; deciding again", run_id, stage)
            continue
        record(services, change, stage)
        try:
            flush(services, run_id)
        except Exception:
            if not sends_may_wait:
                raise
            logger.warning("run %s: %s committed; its messages wait for the outbox relay", run_id, stage,
                           exc_info=True)
        return committed
    raise ConcurrencyConflict(f"run {run_id}: gave up after {MAX_CONFLICT_RETRIES} concurrent changes")


@dataclass(frozen=True)
class Delivery:
    """Which delivery of a message this is: the id names the message, the count says how often it came."""

    message_id: str
    delivery_count: int


M = TypeVar("M", bound=StageMessage)


def on_queue(bp: func.Blueprint, services: ServicesProvider, name: str, queue: Queue,
             handle: Callable[[M, Services, Delivery], None], *accepts: type[StageMessage]) -> None:
    """Register `handle` for the stage messages of `queue`: the body is decoded into its dataclass at
    this edge, so a handler only ever sees a typed message."""

    @bp.function_name(name)
    @bp.service_bus_queue_trigger(arg_name="msg", queue_name=queue.value, connection=SERVICE_BUS_CONNECTION)
    def trigger(msg: func.ServiceBusMessage) -> None:
        try:
            message = decode(queue, json.loads(msg.get_body()))
        except ValueError as error:
            raise MalformedMessage(f"message {msg.message_id} on {queue.value} is not JSON: {error}") from None
        if not isinstance(message, accepts):
            raise MalformedMessage(f"{name} does not take {type(message).__name__} messages")
        # `accepts` lists exactly the kinds `handle` is typed for; the check above is what narrows it.
        handle(cast(M, message), services(), Delivery(msg.message_id or "", msg.delivery_count or 1))
