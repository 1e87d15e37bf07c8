"""Running one step at most once: claim it on the run's ETag, act, record the outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from azure.core.credentials import TokenCredential

from gates.killswitch import current
from gates.shell import Delivery, transact
from shared.core.arm_outcomes import ArmOutcome
from shared.core.change import Change
from shared.core.model import Actor, ArmOperation, CredentialSource, Run
from shared.core.steps import Claim, claim_step, record_accepted, record_outcome
from shared.services import Services

logger = logging.getLogger("sre_gates")


@dataclass(frozen=True)
class Claimed:
    """A step this delivery holds: the run as the claim wrote it, and the operation to follow instead
    of acting when ARM had accepted the step's write before its last host died."""

    run: Run
    resume: ArmOperation | None = None


def claim(services: Services, run_id: str, step: int, source: CredentialSource, delivery: Delivery, stage: str,
          actor: Callable[[Run], Actor | None] = lambda _: None) -> Claimed | None:
    """The run with the step claimed by this delivery, or None when this delivery must not act.

    Once the claim is written, a failed send must not fail this delivery: its redelivery would find an
    unfinished claim and end a run that never acted, so what the outbox holds waits for the relay. The kill
    switch is not read here but just before each ARM call the claim leads to (`hold_before_arm`): one read
    per call, and following an operation ARM accepted reads none (it changes nothing in Azure)."""
    decisions: list[Claim] = []

    def decide(run: Run) -> Change | None:
        now = services.clock.now()
        decisions.append(claim_step(run, step, source, delivery.message_id, delivery.delivery_count, now,
                                    actor(run)))
        return decisions[-1].change

    run = transact(services, run_id, decide, stage, trigger=delivery.message_id, sends_may_wait=True)
    if run is None or not decisions[-1].proceed:
        logger.info("run %s step %s not run: %s", run_id, step, decisions[-1].reason if decisions else "no run")
        return None
    return Claimed(run, decisions[-1].resume)


def act(services: Services, claimed: Claimed, step: int, credential: TokenCredential, stage: str,
        delivery: Delivery) -> tuple[ArmOutcome, Run]:
    """ARM's outcome, and the run as last written (the claim, or the accepted operation after it)."""
    latest = [claimed.run]

    def accepted(operation: ArmOperation) -> None:
        latest[0] = record_operation(services, latest[0], step, operation, stage, delivery)

    run = claimed.run
    spec = services.policy.plans.catalog[run.steps[step].action]
    outcome = services.arm.perform(spec, run.resource_id, run.steps[step].parameters, credential,
                                   client_request_id=run.steps[step].client_request_id, on_accepted=accepted,
                                   may_retry=lambda: not current(services).engaged)
    return outcome, latest[0]


def resume(services: Services, operation: ArmOperation) -> ArmOutcome:
    """Follow the operation ARM accepted before the last host died. Its status is a read of the
    operation, so the agent's own identity follows it, also for a step a person's credentials ran:
    that grant was discarded when ARM accepted the write and is never needed again."""
    return services.arm.resume(operation, services.tokens.agent_credential())


def record_operation(services: Services, claimed: Run, step: int, operation: ArmOperation, stage: str,
                     delivery: Delivery) -> Run:
    """Write where to follow the operation before following it, first on the claim's ETag. If the
    write fails, the operation is still followed: its outcome is recorded at the end as it always was."""
    now = services.clock.now()
    try:
        written = transact(services, claimed.run_id, lambda run: record_accepted(run, step, operation, now), stage,
                           trigger=delivery.message_id, run=claimed)
    except Exception:
        logger.warning("run %s step %s: ARM accepted the write, but recording its operation failed; "
                       "following it anyway", claimed.run_id, step, exc_info=True)
        return claimed
    return written or claimed


def finish(services: Services, claimed: Run, step: int, outcome: ArmOutcome, stage: str, delivery: Delivery) -> None:
    """Record what ARM answered, first on the ETag the claim wrote (nobody else usually wrote since)."""
    now = services.clock.now()
    transact(services, claimed.run_id, lambda run: record_outcome(run, step, outcome, now), stage,
             trigger=delivery.message_id, run=claimed)
