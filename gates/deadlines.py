"""Deadlines: a scheduled message expires a request nobody answered (no answer means no action); another,
where the plan asks, reminds those asked and escalates to a second group before the deadline."""

from __future__ import annotations

import azure.functions as func

from gates.shell import Delivery, on_queue, transact
from shared.core.messages import ExpireRequest, RemindRequest, envelope
from shared.core.model import RequestState
from shared.core.requests import expire, remind
from shared.services import Services, ServicesProvider
from shared.topology import Queue

STAGE = "deadline"


def handle_deadline(message: ExpireRequest | RemindRequest, services: Services, delivery: Delivery) -> None:
    now = services.clock.now()
    if isinstance(message, RemindRequest):
        transact(services, message.run_id, lambda r: remind(r, message.request_id, now), STAGE,
                 trigger=delivery.message_id)
        return
    run = transact(services, message.run_id, lambda r: expire(r, message.request_id, now), STAGE,
                   trigger=delivery.message_id)
    request = run.request(message.request_id) if run else None
    if request is not None and request.state is RequestState.PENDING and request.deadline > now:
        # Delivered early by this clock: come back at the deadline rather than leave it open forever.
        services.bus.send([envelope(message, f"deadline-{message.request_id}-{int(now.timestamp())}",
                                    at=request.deadline)])


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()
    on_queue(bp, services, "deadline", Queue.DEADLINES, handle_deadline, ExpireRequest, RemindRequest)
    return bp
