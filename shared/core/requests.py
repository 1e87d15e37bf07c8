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
from shared.core.messages import (
    AttemptStep,
    ExecuteStep,
    ExpireRequest,
    RemindRequest,
    RequestClosed,
    RequestOpened,
    RequestReminded,
)
from shared.core.model import (
    Actor,
    CommentRule,
    Decision,
    Request,
    RequestKind,
    RequestState,
    Run,
    RunState,
    StepPreview,
    StepState,
    Vote,
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
    ALREADY_ANSWERED = "already_answered"  # this person's approval already counts towards the quorum
    COMMENT_REQUIRED = "comment_required"
    COMMENT_TOO_LONG = "comment_too_long"


MAX_COMMENT = 1000


@dataclass(frozen=True)
class Answer:
    """How an answer reached the app, for the audit: the reason given, the channel (browser, API,
    MCP), and, for a credential grant, when the delegated sign-in expires."""

    comment: str = ""
    channel: str = "api"
    token_expires_at: dt.datetime | None = None


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
                      approvers=run.approvers, plan_hash=plan_hash(run, previews=previews), previews=previews,
                      rule=run.approval)
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
    # One grant for the run: it serves the challenged step and the later steps that need the same
    # permission, each exchanging it for its own token, so a person is asked once, not once a step.
    covers = (step_index, *(s.index for s in run.steps if s.index > step_index and s.state is StepState.PENDING
                           and s.permission.lower() == step.permission.lower()))
    request = Request(request_id=request_id, kind=RequestKind.CREDENTIALS, deadline=now + timeouts.credentials,
                      approvers=run.credential_approvers or run.approvers, plan_hash=plan_hash(run, step_index),
                      step_index=step_index, covers=covers,
                      claims=step.claims,
                      # One person lends their own access: no quorum; a reason as the plan asks.
                      rule=replace(run.approval, quorum=1))
    steps = ("step " if len(covers) == 1 else "steps ") + " and ".join(str(i + 1) for i in covers)
    return _open_request(run, request, now, f"temporary credentials asked of {_names(request)} for {steps}")


def _open_request(run: Run, request: Request, now: dt.datetime, summary: str, **details: object) -> Change:
    b = ChangeBuilder(run, now)
    b.set_request(request)
    event = "consent_requested" if request.kind is RequestKind.CONSENT else "credential_requested"
    b.log(event, Actor.system(), summary, request_id=request.request_id, deadline=request.deadline.isoformat(),
          approvers=[a.upn for a in request.approvers], step=request.step_index, **details)
    b.send(RequestOpened(run.run_id, request.request_id), f"request-{request.request_id}")
    b.send(ExpireRequest(run.run_id, request.request_id), f"deadline-{request.request_id}", at=request.deadline)
    if request.rule.remind_at is not None:
        b.send(RemindRequest(run.run_id, request.request_id), f"remind-{request.request_id}",
               at=now + (request.deadline - now) * request.rule.remind_at)
    return b.build()


def remind(run: Run, request_id: str, now: dt.datetime) -> Change | None:
    """Remind those asked who have not answered, once, and ask the plan's escalation group too; a
    request already decided, expired or cancelled needs no reminder."""
    request = run.request(request_id)
    if request is None or request.state is not RequestState.PENDING or request.reminded:
        return None
    b = ChangeBuilder(run, now)
    added = tuple(a for a in request.rule.escalate_to if a not in request.approvers)
    waiting = [a.upn for a in request.approvers if not any(a.matches(v.actor.id, v.actor.name) for v in request.votes)]
    b.set_request(replace(request, reminded=True, approvers=(*request.approvers, *added)))
    left = max(0, int((request.deadline - now).total_seconds() // 60))
    b.log("request_reminded", Actor.system("reminder"), f"no decision yet, {left} min left: reminded "
          f"{', '.join(waiting)}", request_id=request_id, reminded=waiting)
    if added:
        b.log("request_escalated", Actor.system("escalation"),
              f"nobody has decided yet: also asked {', '.join(a.upn for a in added)}", request_id=request_id,
              escalated_to=[a.upn for a in added])
    b.send(RequestReminded(run.run_id, request_id), f"reminded-{request_id}")
    return b.build()


def _names(request: Request) -> str:
    return ", ".join(a.upn for a in request.approvers)


def check_decision(run: Run, request_id: str, principal: Principal, seen_plan_hash: str, now: dt.datetime,
                   decision: Decision | None = None, comment: str = "") -> Request:
    """The request a person may decide now, or `DecisionRefused` saying why not. With `decision`, the
    answer itself is checked too: a reason where the plan requires one, one approval per person."""
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
    if decision is None:
        return request
    if any(v.actor.id.lower() == principal.object_id.lower() for v in request.approvals()):
        raise DecisionRefused(Refusal.ALREADY_ANSWERED,
                              f"your approval already counts; {_still_needed(request)} more needed from others")
    if comment_required(request, decision) and not comment.strip():
        what = "to deny" if request.rule.comment is CommentRule.TO_DENY else "with every decision"
        raise DecisionRefused(Refusal.COMMENT_REQUIRED, f"this plan asks for a reason {what}; give one")
    if len(comment) > MAX_COMMENT:
        raise DecisionRefused(Refusal.COMMENT_TOO_LONG, f"the reason is longer than {MAX_COMMENT} characters")
    return request


def comment_required(request: Request, decision: Decision) -> bool:
    rule = request.rule.comment
    return rule is CommentRule.ALWAYS or (rule is CommentRule.TO_DENY and decision is Decision.DENY)


def _still_needed(request: Request) -> int:
    return max(0, request.rule.quorum - len(request.approvals()))


def decide(
    run: Run,
    request_id: str,
    decision: Decision,
    principal: Principal,
    seen_plan_hash: str,
    now: dt.datetime,
    sealed_assertion: str | None = None,
    answer: Answer = Answer(),
) -> Change:
    """A decision binds to the exact plan the person saw. The first answer decides, unless the plan asks
    for a quorum: then consent needs that many distinct approvers, and any deny ends the run."""
    comment = answer.comment.strip()
    request = check_decision(run, request_id, principal, seen_plan_hash, now, decision, comment)
    b = ChangeBuilder(run, now)
    actor = principal.actor
    approve = decision is Decision.APPROVE
    vote = Vote(actor, decision, now, comment, answer.channel)
    seen = {"request_id": request_id, "channel": answer.channel, "plan_version": run.plan_version,
            "plan_hash": seen_plan_hash, **({"comment": comment, "reason": comment} if comment else {})}
    answered = replace(request, votes=(*request.votes, vote))
    if approve and request.kind is RequestKind.CONSENT and _still_needed(answered) > 0:
        b.set_request(answered)
        b.log("consent_approval", actor, f"{principal.name} approved; {_still_needed(answered)} more approval(s) "
              f"needed from other approvers ({len(answered.approvals())} of {request.rule.quorum})",
              approvals=len(answered.approvals()), quorum=request.rule.quorum, **seen)
        return b.build()
    decided = replace(answered, state=RequestState.GRANTED if approve else RequestState.DENIED, decided_by=actor,
                      decided_at=now, reason=comment[:500])
    b.send(RequestClosed(run.run_id, request_id), f"closed-{request_id}")
    because = f": {comment}" if comment else ""
    if request.kind is RequestKind.CONSENT:
        again = is_reconsent(run, request)
        b.set_request(decided)
        if approve:
            by = ", ".join(v.actor.name for v in decided.approvals())
            b.log("consent_granted", actor, f"{by} consented to the plan", **seen)
            b.move(RunEvent.CONSENT_GRANTED)
            step = run.current_step()
            index = step.index if step is not None else 0
            # Asked again (after a drift, or a consent that lapsed while paused), the attempt is a new
            # message (the first one's id is taken).
            b.send(AttemptStep(run.run_id, index),
                   f"step-{index}-{request_id}" if again or run.consent_lapsed_at else "step-0")
        elif again:
            b.log("consent_denied", actor, f"{principal.name} denied consent to the changed resource{because}",
                  **seen)
            b.end(RunEvent.DRIFT_UNCONFIRMED, actor, f"the resource changed after consent and {principal.name} "
                  f"denied consent to its new state{because}; no action taken")
        else:
            b.log("consent_denied", actor, f"{principal.name} denied consent{because}", **seen)
            b.end(RunEvent.CONSENT_DENIED, actor, f"consent denied by {principal.name}{because}; no action taken")
        return b.build()

    step_index = request.step_index if request.step_index is not None else -1
    if approve:
        if not sealed_assertion:
            raise DecisionRefused(Refusal.SIGN_IN_NEEDED,
                                  "granting credentials needs your signed-in token; sign in again")
        lifetime = {} if answer.token_expires_at is None else {
            "token_expires_at": answer.token_expires_at.isoformat(timespec="seconds"),
            "token_lifetime_seconds": int((answer.token_expires_at - now).total_seconds())}
        b.set_request(replace(decided, sealed_assertion=sealed_assertion))
        steps = " and ".join(str(i + 1) for i in request.steps_covered)
        b.log("credential_granted", actor,
              f"{principal.name} granted temporary credentials for step{'s' if len(request.steps_covered) > 1 else ''} "
              f"{steps}", step=step_index, steps=[i + 1 for i in request.steps_covered], scope=ARM_USER_SCOPE,
              **seen, **lifetime)
        b.move(RunEvent.CREDENTIALS_GRANTED)
        b.send(ExecuteStep(run.run_id, step_index), f"step-{step_index}-{request_id}")
    else:
        b.set_request(decided)
        b.log("credential_denied", actor, f"{principal.name} denied credentials{because}", step=step_index, **seen)
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
    b.send(RequestClosed(run.run_id, request_id), f"closed-{request_id}")
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
