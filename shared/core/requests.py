"""Questions put to people: consent to a plan, temporary credentials for a step. Opening one, deciding
it (first decision wins, bound to the plan the person saw), and expiring it when nobody answered.

A decision that cannot be taken raises `DecisionRefused` with a named `Refusal`; the HTTP shell maps
each refusal to its status."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, replace
from enum import StrEnum

from shared.core.authority import Principal, is_authorised
from shared.core.change import Change, ChangeBuilder, step_of
from shared.core.errors import GatesError
from shared.core.messages import AttemptStep, ExecuteStep, ExpireRequest, RequestOpened
from shared.core.model import (
    Actor,
    Decision,
    Request,
    RequestKind,
    RequestState,
    Run,
    RunState,
    StepPreview,
    StepState,
)
from shared.core.previews import is_reconsent, preview_json
from shared.core.previews import lines as preview_lines
from shared.core.transitions import RunEvent

# A scheduled message may arrive a little before its time by the receiver's clock.
DEADLINE_TOLERANCE = dt.timedelta(seconds=5)
ARM_USER_SCOPE = "https://management.azure.com/user_impersonation"


@dataclass(frozen=True)
class Timeouts:
    consent: dt.timedelta
    credentials: dt.timedelta


class Refusal(StrEnum):
    NO_SUCH_REQUEST = "no_such_request"
    NOT_AN_APPROVER = "not_an_approver"
    ALREADY_DECIDED = "already_decided"
    EXPIRED = "expired"
    PLAN_CHANGED = "plan_changed"
    SIGN_IN_NEEDED = "sign_in_needed"  # granting credentials needs the person's own, fresh sign-in
    LACKS_PERMISSION = "lacks_permission"  # the person's own roles cannot do the step; others may grant


class DecisionRefused(GatesError):
    """A decision that cannot be taken; `message` says why, for the person who tried."""

    def __init__(self, refusal: Refusal, message: str) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.message = message


def plan_hash(run: Run, step_index: int | None = None, previews: tuple[StepPreview, ...] = ()) -> str:
    """What a person sees and decides on: resource, mode and steps (and the step, for credentials; and
    what each write will change, for consent)."""
    subject = {
        "run": run.run_id,
        "resource": run.resource_id.lower(),
        "mode": run.mode.value,
        "steps": [[s.action, s.kind.value, s.permission, s.parameters] for s in run.steps],
        "step": step_index,
        **({"previews": [preview_json(p) for p in previews]} if previews else {}),
    }
    return hashlib.sha256(json.dumps(subject, sort_keys=True).encode()).hexdigest()


def open_consent_request(run: Run, request_id: str, now: dt.datetime, timeouts: Timeouts,
                         previews: tuple[StepPreview, ...] = ()) -> Change | None:
    """Ask for consent with what each write will change; asked again after the resource drifted."""
    if run.state is not RunState.AWAITING_CONSENT or any(
            r.kind is RequestKind.CONSENT and r.state is RequestState.PENDING for r in run.requests):
        return None
    request = Request(request_id=request_id, kind=RequestKind.CONSENT, deadline=now + timeouts.consent,
                      approvers=run.approvers, plan_hash=plan_hash(run, previews=previews), previews=previews)
    again = any(r.kind is RequestKind.CONSENT for r in run.requests)
    changes = "".join(f"; {line}" for line in preview_lines(previews))
    return _open_request(run, request, now,
                         f"consent asked {'again ' if again else ''}of {_names(request)}{changes}",
                         previews=[preview_json(p) for p in previews])


def open_credential_request(run: Run, step_index: int, request_id: str, now: dt.datetime,
                            timeouts: Timeouts) -> Change | None:
    step = step_of(run, step_index)
    if run.state is not RunState.AWAITING_CREDENTIALS or step is None:
        return None
    if step.state is not StepState.AWAITING_CREDENTIALS:
        return None
    if any(r.kind is RequestKind.CREDENTIALS and r.step_index == step_index and r.state is RequestState.PENDING
           for r in run.requests):
        return None
    # A proposal's requester is asked for their own credentials (their own rights), whoever consents.
    request = Request(request_id=request_id, kind=RequestKind.CREDENTIALS, deadline=now + timeouts.credentials,
                      approvers=run.credential_approvers or run.approvers, plan_hash=plan_hash(run, step_index),
                      step_index=step_index, claims=step.claims)
    return _open_request(run, request, now,
                         f"temporary credentials asked of {_names(request)} for step {step_index + 1}")


def _open_request(run: Run, request: Request, now: dt.datetime, summary: str, **details: object) -> Change:
    b = ChangeBuilder(run, now)
    b.set_request(request)
    event = "consent_requested" if request.kind is RequestKind.CONSENT else "credential_requested"
    b.log(event, Actor.system(), summary, request_id=request.request_id, deadline=request.deadline.isoformat(),
          approvers=[a.upn for a in request.approvers], step=request.step_index, **details)
    b.send(RequestOpened(run.run_id, request.request_id), f"request-{request.request_id}")
    b.send(ExpireRequest(run.run_id, request.request_id), f"deadline-{request.request_id}", at=request.deadline)
    return b.build()


def _names(request: Request) -> str:
    return ", ".join(a.upn for a in request.approvers)


def check_decision(run: Run, request_id: str, principal: Principal, seen_plan_hash: str, now: dt.datetime) -> Request:
    """The request a person may decide now, or `DecisionRefused` saying why not."""
    request = run.request(request_id)
    if request is None:
        raise DecisionRefused(Refusal.NO_SUCH_REQUEST, "no such request")
    if not is_authorised(principal, request):
        raise DecisionRefused(Refusal.NOT_AN_APPROVER, f"{principal.name} is not an approver of this plan")
    if request.state is not RequestState.PENDING:
        by = f" by {request.decided_by.name}" if request.decided_by else ""
        at = f" at {request.decided_at.isoformat(timespec='seconds')}" if request.decided_at else ""
        raise DecisionRefused(Refusal.ALREADY_DECIDED, f"this request is already {request.state.value}{by}{at}")
    if now >= request.deadline:
        raise DecisionRefused(Refusal.EXPIRED,
                              f"this request expired at {request.deadline.isoformat(timespec='seconds')}")
    if seen_plan_hash != request.plan_hash:
        raise DecisionRefused(Refusal.PLAN_CHANGED,
                              "the plan you saw is not the plan awaiting a decision; reload the page")
    return request


def decide(
    run: Run,
    request_id: str,
    decision: Decision,
    principal: Principal,
    seen_plan_hash: str,
    now: dt.datetime,
    sealed_assertion: str | None = None,
    reason: str = "",
) -> Change:
    """First decision wins; a decision binds to the exact plan the person saw. The person's reason, if
    they give one, is kept with the decision (an agent reads it back as feedback)."""
    request = check_decision(run, request_id, principal, seen_plan_hash, now)
    b = ChangeBuilder(run, now)
    actor = principal.actor
    approve = decision is Decision.APPROVE
    reason = reason.strip()[:500]
    decided = replace(request, state=RequestState.GRANTED if approve else RequestState.DENIED, decided_by=actor,
                      decided_at=now, reason=reason)
    because = f": {reason}" if reason else ""
    if request.kind is RequestKind.CONSENT:
        again = is_reconsent(run, request)
        b.set_request(decided)
        if approve:
            b.log("consent_granted", actor, f"{principal.name} consented to the plan", request_id=request_id)
            b.move(RunEvent.CONSENT_GRANTED)
            step = run.current_step()
            index = step.index if step is not None else 0
            # Asked again after a drift, the attempt is a new message (the first one's id is taken).
            b.send(AttemptStep(run.run_id, index), f"step-{index}-{request_id}" if again else "step-0")
        elif again:
            b.log("consent_denied", actor, f"{principal.name} denied consent to the changed resource{because}",
                  request_id=request_id, reason=reason)
            b.end(RunEvent.DRIFT_UNCONFIRMED, actor, f"the resource changed after consent and {principal.name} "
                  f"denied consent to its new state{because}; no action taken")
        else:
            b.log("consent_denied", actor, f"{principal.name} denied consent{because}", request_id=request_id,
                  reason=reason)
            b.end(RunEvent.CONSENT_DENIED, actor, f"consent denied by {principal.name}{because}; no action taken")
        return b.build()

    step_index = request.step_index if request.step_index is not None else -1
    if approve:
        if not sealed_assertion:
            raise DecisionRefused(Refusal.SIGN_IN_NEEDED,
                                  "granting credentials needs your signed-in token; sign in again")
        b.set_request(replace(decided, sealed_assertion=sealed_assertion))
        b.log("credential_granted", actor,
              f"{principal.name} granted temporary credentials for step {step_index + 1}",
              request_id=request_id, step=step_index, scope=ARM_USER_SCOPE)
        b.move(RunEvent.CREDENTIALS_GRANTED)
        b.send(ExecuteStep(run.run_id, step_index), f"step-{step_index}-{request_id}")
    else:
        b.set_request(decided)
        b.log("credential_denied", actor, f"{principal.name} denied credentials{because}", request_id=request_id,
              step=step_index, reason=reason)
        b.end(RunEvent.CREDENTIALS_DENIED, actor,
              f"credentials denied by {principal.name}{because}; no action taken")
    return b.build()


def expire(run: Run, request_id: str, now: dt.datetime) -> Change | None:
    request = run.request(request_id)
    if request is None or request.state is not RequestState.PENDING:
        return None
    if now + DEADLINE_TOLERANCE < request.deadline:
        return None
    b = ChangeBuilder(run, now)
    b.set_request(replace(request, state=RequestState.EXPIRED))
    if request.kind is RequestKind.CONSENT:
        b.log("consent_expired", Actor.system("deadline"), "no consent before the deadline", request_id=request_id)
        if is_reconsent(run, request):
            b.end(RunEvent.DRIFT_UNCONFIRMED, Actor.system("deadline"),
                  "the resource changed after consent and its new state was not approved in time; no action taken")
        else:
            b.end(RunEvent.CONSENT_EXPIRED, Actor.system("deadline"), "consent not given in time; no action taken")
    else:
        b.log("credential_expired", Actor.system("deadline"), "no credentials before the deadline",
              request_id=request_id)
        b.end(RunEvent.CREDENTIALS_EXPIRED, Actor.system("deadline"),
              "credentials not granted in time; no action taken")
    return b.build()
