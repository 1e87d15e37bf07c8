"""Stage 4 — credential gate: ask a person for temporary credentials for one step."""

from __future__ import annotations

import azure.functions as func

from gates.shell import read_json, transact
from shared.core.workflow import open_credential_request
from shared.services import Services, ServicesProvider
from shared.topology import SERVICE_BUS_CONNECTION, Queue

STAGE = "elevation"


def handle_elevation(services: Services, run_id: str, step: int, claims: str | None) -> None:
    now = services.clock.now()
    transact(services, run_id,
             lambda run: open_credential_request(run, step, services.ids(), now, services.timeouts, claims), STAGE)


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("credential_gate")
    @bp.service_bus_queue_trigger(arg_name="msg", queue_name=Queue.ELEVATION.value,
                                  connection=SERVICE_BUS_CONNECTION)
    def credential_gate(msg: func.ServiceBusMessage) -> None:
        body = read_json(msg)
        handle_elevation(services(), body["run_id"], int(body["step"]), body.get("claims"))

    return bp
