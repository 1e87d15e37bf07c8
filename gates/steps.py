"""Running one step at most once: claim it on the run's ETag, act, record the outcome. A read, which may
run twice, is recorded with its claim in one write after ARM answered (`read`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from azure.core.credentials import TokenCredential

from gates.killswitch import current, held_at_retry, hold_before_arm
from gates.preconditions import reads_preview
from gates.shell import Delivery, transact
from shared.core.arm_outcomes import ArmOutcome
from shared.core.change import Change, step_of, then
from shared.core.model import ActionKind, Actor, ArmOperation, CredentialSource, Run
from shared.core.pause import KillSwitch
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
          actor: Callable[[Run], Actor | None] = lambda _: None, run: Run | None = None) -> Claimed | None:
    """The run with the step claimed by this delivery, or None when this delivery must not act.

    Once the claim is written, a failed send must not fail this delivery: its redelivery would find an
    unfinished claim and end a run that never acted, so what the outbox holds waits for the relay. The kill
    switch is not read here but just before each ARM call the claim leads to (`hold_before_arm`): one read
    per call, and following an operation ARM accepted reads none (it changes nothing in Azure). `run`, just
    read, is decided on first."""
    decisions: list[Claim] = []

    def decide(run: Run) -> Change | None:
        now = services.clock.now()
        decisions.append(claim_step(run, step, source, delivery.message_id, delivery.delivery_count, now,
                                    actor(run)))
        return decisions[-1].change

    run = transact(services, run_id, decide, stage, trigger=delivery.message_id, sends_may_wait=True, run=run)
    if run is None or not decisions[-1].proceed:
        logger.info("run %s step %s not run: %s", run_id, step, decisions[-1].reason if decisions else "no run")
        return None
    return Claimed(run, decisions[-1].resume)


def _while_switch_off(services: Services) -> Callable[[], bool]:
    """Whether a throttled call may be sent again: only while the kill switch is off (read each time)."""
    return lambda: not current(services).engaged


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
                                   may_retry=_while_switch_off(services))
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


def reads_only(run: Run, step: int) -> bool:
    """Whether the step's only ARM call is its own read, which may be sent twice: no claim is written first."""
    found = step_of(run, step)
    return found is not None and found.kind is ActionKind.READ and not reads_preview(run, step)


def read(services: Services, run: Run, step: int, delivery: Delivery, stage: str,
         ahead: Future[KillSwitch] | None = None) -> None:
    """Run a read step with the agent's identity, writing its claim and its outcome in one transaction
    on the ETag `run` was read with, after ARM answered. A GET changes nothing, so nothing needs to be
    claimed before it: a host that dies during it leaves the step as it was, and the next delivery reads
    again. Two deliveries at once both read; the one whose write loses on the ETag decides again on the run
    as the winner left it, finds the step done and records nothing (the winner's outbox is sent again:
    its ids are stable). The kill switch is read before the call as before any other (`ahead`, if given)."""
    now = services.clock.now()
    planned = claim_step(run, step, CredentialSource.AGENT, delivery.message_id, delivery.delivery_count, now)
    if not planned.proceed or planned.change is None or planned.resume is not None:
        claim(services, run.run_id, step, CredentialSource.AGENT, delivery, stage, run=run)  # says why, or resends
        return
    if hold_before_arm(services, run, step, stage, delivery.message_id, ahead):
        return
    claimed = planned.change.run.steps[step]
    outcome = services.arm.perform(services.policy.plans.catalog[claimed.action], run.resource_id,
                                   claimed.parameters, services.tokens.agent_credential(),
                                   client_request_id=claimed.client_request_id,
                                   may_retry=_while_switch_off(services))
    if held_at_retry(services, run, step, outcome, stage, delivery.message_id):
        return
    answered = services.clock.now()  # the claim's line says when the call went, the outcome's when ARM answered

    def decide(latest: Run) -> Change | None:
        again = claim_step(latest, step, CredentialSource.AGENT, delivery.message_id, delivery.delivery_count, now)
        if not again.proceed or again.change is None or again.resume is not None:
            return again.change  # another delivery recorded this step first, or the run moved on
        return then(again.change, record_outcome(again.change.run, step, outcome, answered))

    transact(services, run.run_id, decide, stage, trigger=delivery.message_id, run=run)
