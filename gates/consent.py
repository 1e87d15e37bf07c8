"""Stage 2 — consent gate: open the consent request, with its deadline and its e-mail."""

from __future__ import annotations

import azure.functions as func

from gates.killswitch import current, pause_run
from gates.preconditions import read_previews
from gates.shell import Delivery, on_queue, transact
from shared.core.messages import OpenConsent
from shared.core.model import RequestKind, RequestState, RunState
from shared.core.requests import open_consent_request
from shared.services import Services, ServicesProvider
from shared.topology import Queue

STAGE = "consent"


def handle_consent(message: OpenConsent, services: Services, delivery: Delivery) -> None:
    run = services.runs.get_run(message.run_id)
    asking = run is not None and run.state is RunState.AWAITING_CONSENT and not any(
        r.kind is RequestKind.CONSENT and r.state is RequestState.PENDING for r in run.requests)
    if run is not None and asking:
        # The previews are ARM reads: with the kill switch thrown, the run pauses before them, and consent
        # is asked (previews read then) once the switch is lifted.
        switch = current(services)
        if switch.engaged:
            pause_run(services, run, None, switch, STAGE, delivery.message_id)
            return
    # Before → after for each write, read now and bound into the request (and its plan hash). The request
    # is written on the ETag read above: a change during the preview reads fails it, and it is decided again.
    previews = read_previews(services, run) if run is not None and asking else ()
    now = services.clock.now()
    transact(services, message.run_id,
             lambda latest: open_consent_request(latest, services.ids(), now, services.policy.timeouts, previews),
             STAGE, trigger=delivery.message_id, run=run)


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()
    on_queue(bp, services, "consent_gate", Queue.CONSENT, handle_consent, OpenConsent)
    return bp
