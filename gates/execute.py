"""Stage 5 — execute: run a step with a person's credentials, obtained through the on-behalf-of
flow for this step only and revoked when it completes."""

from __future__ import annotations

import logging

import azure.functions as func

from gates.killswitch import held_at_retry, hold_before_arm
from gates.preconditions import reads_preview, still_as_approved
from gates.shell import Delivery, on_queue, transact
from gates.steps import act, claim, finish, resume
from shared.adapters.sealing import SealBroken
from shared.core.messages import ExecuteStep
from shared.core.model import Actor, CredentialSource, Run
from shared.core.steps import credentials_unusable, granted_credential
from shared.ports import CredentialUnavailable
from shared.services import Services, ServicesProvider
from shared.topology import Queue

logger = logging.getLogger("sre_gates")
STAGE = "execution"


def handle_execution(message: ExecuteStep, services: Services, delivery: Delivery) -> None:
    run_id, step = message.run_id, message.step

    def granter(run: Run) -> Actor | None:
        request = granted_credential(run, step)
        return request.decided_by if request else None

    claimed = claim(services, run_id, step, CredentialSource.DELEGATED, delivery, STAGE, actor=granter)
    if claimed is None:
        return
    if claimed.resume is not None:  # ARM accepted it before the last host died: follow it, nothing else
        finish(services, claimed.run, step, resume(services, claimed.resume), STAGE, delivery)
        return
    run = claimed.run
    # The kill switch is read just before each ARM call: the preview's re-read, if any, then the step's own.
    if reads_preview(run, step):
        if hold_before_arm(services, run, step, STAGE, delivery.message_id):
            return
        if not still_as_approved(services, run, step, STAGE, delivery):
            return
    request = granted_credential(run, step)
    if request is None or request.sealed_assertion is None:
        _unusable(services, run, step, "the granted credential is gone", delivery)
        return
    try:
        assertion = services.sealer.unseal(request.sealed_assertion, f"{run_id}/{request.request_id}")
        credential = services.tokens.on_behalf_of(assertion, request.claims)
    except CredentialUnavailable as error:
        # AADSTS500133: the assertion expired between the grant and its use, which is no refusal.
        _unusable(services, run, step, f"Entra ID refused the on-behalf-of exchange: {error.reason}", delivery,
                  stale="AADSTS500133" in error.reason)
        return
    except SealBroken as error:
        _unusable(services, run, step, str(error), delivery)
        return
    try:
        if hold_before_arm(services, run, step, STAGE, delivery.message_id):
            return
        outcome, run = act(services, claimed, step, credential, STAGE, delivery)
    finally:
        credential.revoke()
    if held_at_retry(services, run, step, outcome, STAGE, delivery.message_id):
        return
    finish(services, run, step, outcome, STAGE, delivery)


def _unusable(services: Services, claimed: Run, step: int, reason: str, delivery: Delivery,
              stale: bool = False) -> None:
    logger.warning("run %s step %s: %s", claimed.run_id, step, reason)
    now = services.clock.now()
    transact(services, claimed.run_id, lambda run: credentials_unusable(run, step, reason, now, stale), STAGE,
             trigger=delivery.message_id, run=claimed)


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()
    on_queue(bp, services, "execute", Queue.EXECUTION, handle_execution, ExecuteStep)
    return bp
