"""Stage 3 — attempt: run a step with the agent's own identity. A security challenge goes to the
credential gate; any other failure fails the run."""

from __future__ import annotations

import azure.functions as func

from gates.killswitch import held_at_retry, hold_before_arm, read_ahead
from gates.preconditions import reads_preview, still_as_approved
from gates.shell import Delivery, on_queue
from gates.steps import act, claim, finish, read, reads_only, resume
from shared.core.messages import AttemptStep
from shared.core.model import CredentialSource
from shared.services import Services, ServicesProvider
from shared.topology import Queue

STAGE = "attempt"


def handle_attempt(message: AttemptStep, services: Services, delivery: Delivery) -> None:
    # The kill switch is read before each ARM call; the first call's read goes while the run is read.
    ahead = read_ahead(services)
    run = services.runs.get_run(message.run_id)
    if run is not None and reads_only(run, message.step):
        read(services, run, message.step, delivery, STAGE, ahead)
        return
    claimed = claim(services, message.run_id, message.step, CredentialSource.AGENT, delivery, STAGE, run=run)
    if claimed is None:
        return
    if claimed.resume is not None:  # ARM accepted it before the last host died: no precondition to check
        finish(services, claimed.run, message.step, resume(services, claimed.resume), STAGE, delivery)
        return
    # Then the preview's re-read, if any, and the step's own call, each after a read of its own.
    if hold_before_arm(services, claimed.run, message.step, STAGE, delivery.message_id, ahead):
        return
    if reads_preview(claimed.run, message.step):
        if not still_as_approved(services, claimed.run, message.step, STAGE, delivery):
            return
        if hold_before_arm(services, claimed.run, message.step, STAGE, delivery.message_id):
            return
    outcome, run = act(services, claimed, message.step, services.tokens.agent_credential(), STAGE, delivery)
    if held_at_retry(services, run, message.step, outcome, STAGE, delivery.message_id):
        return
    finish(services, run, message.step, outcome, STAGE, delivery)


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()
    on_queue(bp, services, "attempt", Queue.ATTEMPT, handle_attempt, AttemptStep)
    return bp
