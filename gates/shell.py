"""What every gate does around a decision: load, decide, persist on the ETag, emit the outbox."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import ParamSpec, TypeVar, cast

import azure.functions as func

from shared.core.change import Change
from shared.core.errors import ConcurrencyConflict
from shared.core.messages import MalformedMessage, StageMessage, decode
from shared.core.model import Run
from shared.services import Services, ServicesProvider
from shared.topology import SERVICE_BUS_CONNECTION, Queue

logger = logging.getLogger("sre_gates")
MAX_CONFLICT_RETRIES = 8
# Point reads a stage starts while it does another (`ahead`): short, and never waiting on each other.
_AHEAD = ThreadPoolExecutor(max_workers=16, thread_name_prefix="gates-ahead")
P = ParamSpec("P")
R = TypeVar("R")


def ahead(read: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Future[R]:
    """`read(*args)` started on a thread of its own, for a stage to overlap with its next request. Only for
    reads whose order with the stage's own requests does not matter; an error comes with `result()`."""
    return _AHEAD.submit(read, *args, **kwargs)


def send_outbox(services: Services, run: Run) -> None:
    """Send the messages the run's last change was to be followed by. Safe to repeat: their ids are
    stable, so the queue's duplicate detection drops a second copy, and every consumer is idempotent."""
    if run.outbox:
        services.bus.send(run.outbox)


def record(services: Services, change: Change, stage: str) -> None:
    if services.audit_sink is None:
        return
    for event in change.audit:
        services.audit_sink.emit(change.run, event, stage)


def _with_outbox(change: Change, trigger: str | None) -> Change:
    # The outbox remembers which delivery wrote it; a change that sends nothing keeps the outbox (and
    # trigger) of the change before it, which may still wait for a redelivery of that trigger.
    if not change.messages:
        return change
    return replace(change, run=replace(change.run, last_trigger=trigger))


def _after_commit(services: Services, change: Change, committed: Run, stage: str, sends_may_wait: bool,
                  created: bool = False) -> None:
    record(services, change, stage)
    try:
        if change.messages:
            services.bus.send(change.messages)
    except Exception:
        if not sends_may_wait:
            raise  # the queue redelivers the trigger, and its redelivery sends the outbox
        logger.warning("run %s: %s committed; its messages wait for the resend relay", committed.run_id, stage,
                       exc_info=True)
        services.runs.request_resend(committed.run_id)
    if committed.state.is_terminal:
        services.recent_runs.ended(committed)
    # Indexed as ended by the change that ended it (or by its creation) alone: the rows are keyed by when the
    # run ended, so a later change to the ended run (a repeat a shadowed run absorbs) would only write the
    # same rows again, a batch and a delete a commit for nothing (a storm's repeats are many).
    if committed.state.is_terminal and (created or change.ends_run):
        try:
            services.runs.mark_ended(committed)
        except Exception:
            if not sends_may_wait:
                raise
            # Still indexed as open: the stall sweeper finds it ended and moves it.
            logger.warning("run %s ended; its index waits for the sweeper", committed.run_id, exc_info=True)


def create(services: Services, change: Change, stage: str, *, trigger: str | None = None) -> bool:
    change = _with_outbox(change, trigger)
    created = services.runs.create_run(change)
    if created:
        _after_commit(services, change, change.run, stage, sends_may_wait=False, created=True)
    return created


def transact(services: Services, run_id: str, decide: Callable[[Run], Change | None], stage: str, *,
             trigger: str | None = None, sends_may_wait: bool = False, run: Run | None = None) -> Run | None:
    """Decide on the run and write the change on its ETag, retrying on a concurrent writer.

    `run`, when the caller has just read or written it, is decided on first instead of being read
    again. `trigger` is the id of the message being handled: when the decision changes nothing and this
    is a redelivery of the message that made the run's last change (its host died between the write and
    the send), the outbox is sent again. With `sends_may_wait` (an HTTP caller, which no queue will
    redeliver) a failed send after the commit is noted for the resend relay instead of failing.
    """
    known = run
    for _ in range(MAX_CONFLICT_RETRIES):
        latest = known or services.runs.get_run(run_id)
        known = None
        if latest is None:
            return None
        change = decide(latest)
        if change is None:
            if trigger is not None and latest.last_trigger == trigger:
                send_outbox(services, latest)
                if latest.state.is_terminal:
                    services.runs.mark_ended(latest)
            return latest
        change = _with_outbox(change, trigger)
        try:
            committed = services.runs.commit(change)
        except ConcurrencyConflict:
            logger.info("run %s changed under %s; deciding again", run_id, stage)
            continue
        _after_commit(services, change, committed, stage, sends_may_wait)
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
