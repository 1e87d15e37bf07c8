"""Running one step at most once: claim it on the run's ETag, act, record the outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable

from azure.core.credentials import TokenCredential

from gates.shell import flush, record, transact
from shared.core.arm_outcomes import ArmOutcome
from shared.core.catalog import CATALOG
from shared.core.errors import ConcurrencyConflict
from shared.core.model import Actor, CredentialSource, Run
from shared.core.workflow import claim_step, record_outcome
from shared.services import Services

logger = logging.getLogger("sre_gates")


def claim(services: Services, run_id: str, step: int, source: CredentialSource, message_id: str,
          delivery_count: int, stage: str, actor: Callable[[Run], Actor | None] = lambda _: None) -> Run | None:
    """The run with the step claimed by this delivery, or None when this delivery must not act."""
    for _ in range(8):
        run = services.runs.get_run(run_id)
        if run is None:
            logger.warning("run %s not found for step %s", run_id, step)
            return None
        decision = claim_step(run, step, source, message_id, delivery_count, services.clock.now(), actor(run))
        if decision.change is None:
            logger.info("run %s step %s not run: %s", run_id, step, decision.reason)
            flush(services, run_id)
            return None
        try:
            committed = services.runs.commit(decision.change)
        except ConcurrencyConflict:
            continue
        record(services, decision.change, stage)
        try:
            flush(services, run_id)
        except Exception:
            # The claim is written: failing now would make the redelivery see an unfinished claim and end
            # a run that never acted. What the outbox holds waits for the relay instead.
            logger.warning("run %s: messages after the claim of step %s wait for the outbox relay", run_id, step,
                           exc_info=True)
        return committed if decision.proceed else None
    raise ConcurrencyConflict(f"run {run_id}: could not claim step {step}")


def act(services: Services, run: Run, step: int, credential: TokenCredential) -> ArmOutcome:
    spec = CATALOG[run.steps[step].action]
    return services.arm.perform(spec, run.resource_id, run.steps[step].parameters, credential)


def finish(services: Services, run_id: str, step: int, outcome: ArmOutcome, stage: str) -> None:
    now = services.clock.now()
    transact(services, run_id, lambda run: record_outcome(run, step, outcome, now), stage)
