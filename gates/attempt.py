"""Stage 3 — attempt: run a step with the agent's own identity. A security challenge goes to the
credential gate; any other failure fails the run."""

from __future__ import annotations

import azure.functions as func

from gates.shell import read_json
from gates.steps import act, claim, finish
from shared.core.model import CredentialSource
from shared.services import Services, ServicesProvider
from shared.topology import SERVICE_BUS_CONNECTION, Queue

STAGE = "attempt"


def handle_attempt(services: Services, run_id: str, step: int, message_id: str, delivery_count: int) -> None:
    run = claim(services, run_id, step, CredentialSource.AGENT, message_id, delivery_count, STAGE)
    if run is None:
        return
    outcome = act(services, run, step, services.tokens.agent_credential())
    finish(services, run_id, step, outcome, STAGE)


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("attempt")
    @bp.service_bus_queue_trigger(arg_name="msg", queue_name=Queue.ATTEMPT.value, connection=SERVICE_BUS_CONNECTION)
    def attempt(msg: func.ServiceBusMessage) -> None:
        body = read_json(msg)
        handle_attempt(services(), body["run_id"], int(body["step"]), msg.message_id or "", msg.delivery_count or 1)

    return bp
