"""Stage 2 — consent gate: open the consent request, with its deadline and its e-mail."""

from __future__ import annotations

import azure.functions as func

from gates.shell import Delivery, on_queue, transact
from shared.core.messages import OpenConsent
from shared.core.requests import open_consent_request
from shared.services import Services, ServicesProvider
from shared.topology import Queue

STAGE = "consent"


def handle_consent(message: OpenConsent, services: Services, delivery: Delivery) -> None:
    now = services.clock.now()
    transact(services, message.run_id,
             lambda run: open_consent_request(run, services.ids(), now, services.policy.timeouts), STAGE,
             trigger=delivery.message_id)


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()
    on_queue(bp, services, "consent_gate", Queue.CONSENT, handle_consent, OpenConsent)
    return bp
