"""Deadlines: a scheduled message expires a request nobody answered; no answer means no action."""

from __future__ import annotations

import azure.functions as func

from gates.shell import read_json, transact
from shared.core.model import OutboundMessage, RequestState
from shared.core.workflow import expire
from shared.services import Services, ServicesProvider
from shared.topology import SERVICE_BUS_CONNECTION, Queue

STAGE = "deadline"


def handle_deadline(services: Services, run_id: str, request_id: str) -> None:
    now = services.clock.now()
    run = transact(services, run_id, lambda r: expire(r, request_id, now), STAGE)
    request = run.request(request_id) if run else None
    if request is not None and request.state is RequestState.PENDING and request.deadline > now:
        # Delivered early by this clock: come back at the deadline rather than leave it open forever.
        services.bus.send([OutboundMessage(
            queue=Queue.DEADLINES.value, message_id=f"{run_id}:deadlines:{request_id}:{int(now.timestamp())}",
            body={"run_id": run_id, "request_id": request_id}, correlation_id=run_id,
            scheduled_for=request.deadline)])


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("deadline")
    @bp.service_bus_queue_trigger(arg_name="msg", queue_name=Queue.DEADLINES.value,
                                  connection=SERVICE_BUS_CONNECTION)
    def deadline(msg: func.ServiceBusMessage) -> None:
        body = read_json(msg)
        handle_deadline(services(), body["run_id"], str(body["request_id"]))

    return bp
