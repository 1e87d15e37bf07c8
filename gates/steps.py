"""Running one step at most once: claim it on the run's ETag, act, record the outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable

from azure.core.credentials import TokenCredential

from gates.shell import Delivery, transact
from shared.core.arm_outcomes import ArmOutcome
from shared.core.change import Change
from shared.core.model import Actor, CredentialSource, Run
from shared.core.steps import Claim, claim_step, record_outcome
from shared.services import Services

logger = logging.getLogger("sre_gates")


def claim(services: Services, run_id: str, step: int, source: CredentialSource, delivery: Delivery, stage: str,
          actor: Callable[[Run], Actor | None] = lambda _: None) -> Run | None:
    """The run with the step claimed by this delivery, or None when this delivery must not act.

    Once the claim is written, a failed send must not fail this delivery: its redelivery would find an
    unfinished claim and end a run that never acted, so what the outbox holds waits for the relay."""
    decisions: list[Claim] = []

    def decide(run: Run) -> Change | None:
        decisions.append(claim_step(run, step, source, delivery.message_id, delivery.delivery_count,
                                    services.clock.now(), actor(run)))
        return decisions[-1].change

    run = transact(services, run_id, decide, stage, trigger=delivery.message_id, sends_may_wait=True)
    if run is None or not decisions[-1].proceed:
        logger.info("run %s step %s not run: %s", run_id, step, decisions[-1].reason if decisions else "no run")
        return None
    return run


def act(services: Services, run: Run, step: int, credential: TokenCredential) -> ArmOutcome:
    spec = services.policy.plans.catalog[run.steps[step].action]
    return services.arm.perform(spec, run.resource_id, run.steps[step].parameters, credential)


def finish(services: Services, claimed: Run, step: int, outcome: ArmOutcome, stage: str, delivery: Delivery) -> None:
    """Record what ARM answered, first on the ETag the claim wrote (nobody else usually wrote since)."""
    now = services.clock.now()
    transact(services, claimed.run_id, lambda run: record_outcome(run, step, outcome, now), stage,
             trigger=delivery.message_id, run=claimed)
