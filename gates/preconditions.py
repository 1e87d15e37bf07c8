"""The reads previews are made of, for the consent stage (what each write will change) and for the
attempt and execution stages (just before a write: is the resource still what the approver saw?).

Preview reads go through the same ARM adapter and the agent's own identity as any read step; the
decisions are in `shared.core.previews`."""

from __future__ import annotations

import logging

from gates.shell import Delivery, transact
from shared.core.model import Run, Step, StepPreview
from shared.core.previews import (
    build_preview,
    drifted,
    precondition_changed,
    preview_read,
    previewed_steps,
    seen_preview,
)
from shared.services import Services

logger = logging.getLogger("sre_gates")


def read_previews(services: Services, run: Run) -> tuple[StepPreview, ...]:
    """What each write still to run will change, read now."""
    return tuple(p for p in (read_preview(services, run, step) for step in previewed_steps(run)) if p is not None)


def read_preview(services: Services, run: Run, step: Step) -> StepPreview | None:
    spec = services.policy.plans.catalog.get(step.action)
    read = preview_read(spec) if spec is not None else None
    if spec is None or read is None:
        return None
    outcome = services.arm.perform(read, run.resource_id, step.parameters, services.tokens.agent_credential())
    return build_preview(step, spec, outcome)


def reads_preview(run: Run, step_index: int) -> bool:
    """Whether `still_as_approved` reads ARM for this step: a write whose preview the approver saw."""
    return run.steps[step_index].is_write and seen_preview(run, step_index) is not None


def still_as_approved(services: Services, run: Run, step_index: int, stage: str, delivery: Delivery) -> bool:
    """For a step just claimed: True when it may run; False when it is a write and the resource changed
    since consent (the step is put back and consent is asked again)."""
    run_id = run.run_id
    if not run.steps[step_index].is_write:
        return True
    seen = seen_preview(run, step_index)
    if seen is None:
        return True
    fresh = read_preview(services, run, run.steps[step_index])
    if fresh is None or not drifted(seen, fresh):
        return True
    logger.info("run %s step %s: the resource changed since consent; asking again", run_id, step_index)
    now = services.clock.now()
    transact(services, run_id, lambda latest: precondition_changed(latest, step_index, seen, fresh, now), stage,
             trigger=delivery.message_id, run=run)
    return False
