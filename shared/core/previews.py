"""Previews bound to consent: what each write will change (before → after, read from the resource just
before consent is asked), and the check just before the write that the resource still is what the
approver saw. If it is not, the write does not run: consent is asked again with the new state, and a
"no" (or no answer) to that ends the run `drifted` with both states recorded.

Reading is the shell's job; everything here is pure: which reads to make, what they mean, whether the
resource drifted, and the change a drift makes to the run.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Any

from shared.core.arm_outcomes import ArmOutcome, OutcomeKind
from shared.core.catalog import ActionSpec
from shared.core.change import Change, ChangeBuilder, step_of
from shared.core.messages import OpenConsent
from shared.core.model import (
    ActionKind,
    Actor,
    FieldPreview,
    Request,
    RequestKind,
    RequestState,
    Run,
    RunState,
    Step,
    StepPreview,
    StepState,
)
from shared.core.steps import revoke
from shared.core.transitions import RunEvent

MISSING = "(not present)"


def preview_read(spec: ActionSpec) -> ActionSpec | None:
    """The preview of a write as a read action the ARM adapter can perform (None for a read)."""
    if spec.kind is not ActionKind.WRITE or spec.preview is None:
        return None
    return replace(spec, name=f"{spec.name}.preview", kind=ActionKind.READ, method="GET",
                   path_suffix=spec.preview.path, api_version=spec.preview.api_version,
                   permissions=(f"{spec.resource_type}/read",), body_template=None, query_template={},
                   subscription_scope=False, preview=None, long_running=False)


def previewed_steps(run: Run) -> list[Step]:
    """The steps whose previews consent is asked with: the writes not yet done."""
    return [s for s in run.steps if s.is_write and s.state in (StepState.PENDING, StepState.AWAITING_CREDENTIALS)]


def build_preview(step: Step, spec: ActionSpec, outcome: ArmOutcome) -> StepPreview:
    """The preview of `step` from what the preview read answered."""
    if outcome.kind is not OutcomeKind.SUCCEEDED:
        return StepPreview(step.index, step.action, unavailable=f"the current state could not be read "
                                                                f"({outcome.status} {outcome.code})".strip())
    document = outcome.body or {}
    assert spec.preview is not None
    fields = tuple(FieldPreview(c.field, c.label, _at(document, c.field), c.after(step.parameters))
                   for c in spec.preview.changes)
    return StepPreview(step.index, step.action, fields)


def seen_preview(run: Run, step_index: int) -> StepPreview | None:
    """What the approver saw of this step, in the consent they gave last (None: no preview to hold to)."""
    granted = [r for r in run.requests if r.kind is RequestKind.CONSENT and r.state is RequestState.GRANTED]
    if not granted:
        return None
    return next((p for p in granted[-1].previews if p.step == step_index), None)


def drifted(seen: StepPreview, fresh: StepPreview) -> bool:
    """True when the resource no longer shows what the approver saw (or can no longer be read)."""
    if seen.unavailable:
        return False  # nothing was shown to hold the resource to
    if fresh.unavailable:
        return True  # the write would run against a state nobody has seen
    return [f.before for f in seen.fields] != [f.before for f in fresh.fields]


def precondition_changed(run: Run, step_index: int, seen: StepPreview, fresh: StepPreview,
                         now: dt.datetime) -> Change | None:
    """A write claimed but not yet sent does not run: the step goes back to pending (a grant for the old
    state is discarded) and consent is asked again, with the new state."""
    step = step_of(run, step_index)
    if step is None or run.state is not RunState.RUNNING \
            or step.state not in (StepState.ATTEMPTING, StepState.EXECUTING):
        return None
    b = ChangeBuilder(run, now)
    revoke(b, step_index)
    b.set_step(replace(step, state=StepState.PENDING, outcome="resource changed; consent asked again",
                       credential_source=None, claim_message_id=None, claim_delivery=0))
    b.log("precondition_changed", Actor.system("preview"),
          f"step {step_index + 1} ({step.action}): the resource changed since consent "
          f"({describe(seen)} was approved; now {describe(fresh)}); the write does not run and consent is "
          "asked again", step=step_index, seen=preview_json(seen), now=preview_json(fresh))
    b.move(RunEvent.PRECONDITION_CHANGED)
    asked = sum(1 for r in run.requests if r.kind is RequestKind.CONSENT)
    b.send(OpenConsent(run.run_id), f"open-again-{asked}")
    return b.build()


def is_reconsent(run: Run, request: Request) -> bool:
    """A consent request asked because the resource changed after an earlier consent. A consent that
    lapsed while the run was paused (`Run.consent_lapsed_at`) is no earlier consent: asked again then,
    a "no" is a plain denial."""
    lapsed = run.consent_lapsed_at
    return request.kind is RequestKind.CONSENT and any(
        r.kind is RequestKind.CONSENT and r.state is RequestState.GRANTED and r.request_id != request.request_id
        and (lapsed is None or (r.decided_at is not None and r.decided_at > lapsed))
        for r in run.requests)


def describe(preview: StepPreview) -> str:
    if preview.unavailable:
        return preview.unavailable
    if not preview.fields:
        return "no field it changes can be read"
    return "; ".join(f"{f.label} {_text(f.before)} → {_text(f.after)}" for f in preview.fields)


def lines(previews: tuple[StepPreview, ...]) -> list[str]:
    """One line per write, for the consent page and e-mail."""
    return [f"step {p.step + 1} ({p.action}): {describe(p)}" for p in previews]


def preview_json(preview: StepPreview) -> dict[str, Any]:
    return {"step": preview.step, "action": preview.action, "unavailable": preview.unavailable,
            "fields": [{"field": f.field, "label": f.label, "before": f.before, "after": f.after}
                       for f in preview.fields]}


def _at(document: Any, pointer: str) -> Any:
    current = document
    for token in [t.replace("~1", "/").replace("~0", "~") for t in pointer.strip("/").split("/") if t]:
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list) and token.isdigit() and int(token) < len(current):
            current = current[int(token)]
        else:
            return MISSING
    return current


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return str(value) if not isinstance(value, (list, dict)) else _compact(value)


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))[:300]
