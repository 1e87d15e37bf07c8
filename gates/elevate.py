"""Stage 4 — credential gate: ask a person for temporary credentials for one step."""

from __future__ import annotations

import azure.functions as func

from gates.shell import Delivery, on_queue, transact
from shared.core.messages import OpenCredentialRequest
from shared.core.requests import open_credential_request
from shared.services import Services, ServicesProvider
from shared.topology import Queue

STAGE = "elevation"


def handle_elevation(message: OpenCredentialRequest, services: Services, delivery: Delivery) -> None:
    now = services.clock.now()
    transact(services, message.run_id, lambda run: open_credential_request(
        run, message.step, services.ids(), now, services.policy.timeouts), STAGE,
        trigger=delivery.message_id)


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()
    on_queue(bp, services, "credential_gate", Queue.ELEVATION, handle_elevation, OpenCredentialRequest)
    return bp
