"""Stage 2 — consent gate: open the consent request, with its deadline and its e-mail."""

from __future__ import annotations

import azure.functions as func

from gates.shell import read_json, transact
from shared.core.workflow import open_consent_request
from shared.services import Services, ServicesProvider
from shared.topology import SERVICE_BUS_CONNECTION, Queue

STAGE = "consent"


def handle_consent(services: Services, run_id: str) -> None:
    now = services.clock.now()
    transact(services, run_id, lambda run: open_consent_request(run, services.ids(), now, services.timeouts), STAGE)


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("consent_gate")
    @bp.service_bus_queue_trigger(arg_name="msg", queue_name=Queue.CONSENT.value, connection=SERVICE_BUS_CONNECTION)
    def consent_gate(msg: func.ServiceBusMessage) -> None:
        handle_consent(services(), read_json(msg)["run_id"])

    return bp
