"""Every decision a run goes through, as pure functions from (run, event) to a `Change`.

A `Change` is the new run, the audit lines to append and the messages that must follow, all of which
the shell writes in one transaction and sends after. Functions return `None` when the event changes
nothing (a duplicate, or an event the run has moved past), which makes every handler idempotent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

from shared.core.arm_outcomes import ArmOutcome
from shared.core.catalog import CATALOG
from shared.core.errors import IllegalTransition
from shared.core.model import (
    ActionKind,
    Actor,
    Alert,
    AuditEvent,
    CredentialSource,
    Decision,
    Mode,
    OutboundMessage,
    Request,
    RequestKind,
    RequestState,
    Run,
    RunState,
    Step,
    StepState,
)
from shared.core.modes import challenge_leads_to_elevation, consent_required, effective_mode, step_allowed_in_mode
from shared.core.plans import ResponsePlan
from shared.core.transitions import RunEvent, next_request_state, next_run_state
from shared.topology import Queue

# A scheduled message may arrive a little before its time by the receiver's clock.
DEADLINE_TOLERANCE = dt.timedelta(seconds=5)


@dataclass(frozen=True)
class Change:
    run: Run
    audit: tuple[AuditEvent, ...] = ()
    messages: tuple[OutboundMessage, ...] = ()


@dataclass(frozen=True)
class Principal:
    """A signed-in person, as App Service Authentication describes them."""

    object_id: str
    name: str  # the sign-in name (UPN), which plans name approvers by
    roles: frozenset[str]
    display_name: str = ""

    @property
    def actor(self) -> Actor:
        return Actor.person(self.object_id, self.name)


APPROVER_ROLE = "Gates.Approver"
READER_ROLE = "Gates.Reader"


class DecisionRefused(Exception):
    """A decision that cannot be taken; `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Timeouts:
    consent: dt.timedelta
    credentials: dt.timedelta


class _Builder:
    """Accumulates one change: state edits, audit lines with their sequence numbers, messages."""

    def __init__(self, run: Run, now: dt.datetime) -> None:
        self.run = run
        self.now = now
        self.audit: list[AuditEvent] = []
        self.messages: list[OutboundMessage] = []

    def log(self, event: str, actor: Actor, summary: str, **details: Any) -> None:
        seq = self.run.audit_seq + len(self.audit) + 1
        self.audit.append(AuditEvent(seq, event, self.now, actor, summary, details))

    def send(self, queue: Queue, key: str, body: dict[str, Any], at: dt.datetime | None = None) -> None:
        self.messages.append(OutboundMessage(
            queue=queue.value,
            message_id=f"{self.run.run_id}:{queue.value}:{key}",
            body={"run_id": self.run.run_id, **body},
            correlation_id=self.run.run_id,
            scheduled_for=at,
        ))

    def move(self, event: RunEvent) -> None:
        self.run = replace(self.run, state=next_run_state(self.run.state, event))

    def set_step(self, step: Step) -> None:
        steps = list(self.run.steps)
        steps[step.index] = step
        self.run = replace(self.run, steps=tuple(steps))

    def set_request(self, request: Request) -> None:
        requests = [request if r.request_id == request.request_id else r for r in self.run.requests]
        if request.request_id not in {r.request_id for r in self.run.requests}:
            requests.append(request)
        self.run = replace(self.run, requests=tuple(requests))

    def end(self, event: RunEvent, actor: Actor, reason: str) -> None:
        """Move to a terminal state: nothing later runs, nothing pending stays open, nothing sealed stays."""
        self.move(event)
        for step in self.run.steps:
            if step.state in (StepState.PENDING, StepState.AWAITING_CREDENTIALS):
                self.set_step(replace(step, state=StepState.SKIPPED))
        for request in self.run.requests:
            if request.state is RequestState.PENDING:
                self.set_request(replace(request, state=RequestState.CANCELLED, reason=reason))
            if request.sealed_assertion is not None:
                self.set_request(replace(self.run.request(request.request_id) or request, sealed_assertion=None))
                self.log("credential_revoked", Actor.system(), "the granted credential was discarded unused",
                         request_id=request.request_id)
        self.run = replace(self.run, outcome=reason)
        self.log("run_ended", actor, f"run {self.run.state.value}: {reason}", state=self.run.state.value)
        self.send(Queue.NOTIFICATIONS, f"ended-{self.run.state.value}", {"kind": "run_ended"})

    def build(self) -> Change:
        run = replace(self.run, updated_at=self.now, audit_seq=self.run.audit_seq + len(self.audit))
        return Change(run, tuple(self.audit), tuple(self.messages))


def plan_hash(run: Run, step_index: int | None = None) -> str:
    """What a person sees and decides on: resource, mode and steps (and the step, for credentials)."""
    subject = {
        "run": run.run_id,
        "resource": run.resource_id.lower(),
        "mode": run.mode.value,
        "steps": [[s.action, s.kind.value, s.permission, s.parameters] for s in run.steps],
        "step": step_index,
    }
    return hashlib.sha256(json.dumps(subject, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- intake


def start_run(
    run_id: str,
    alert: Alert,
    resource_id: str,
    plan: ResponsePlan | None,
    plan_version: int,
    ceiling: Mode,
    now: dt.datetime,
    correlation_key: str = "",
) -> Change:
    if plan is None:
        run = Run(
            run_id=run_id, state=RunState.UNMATCHED, mode=Mode.REVIEW, plan_name="", plan_version=plan_version,
            runbook="", resource_id=resource_id, alert=alert, steps=(), approvers=(), notify=(), created_at=now,
            updated_at=now, correlation_key=correlation_key, alert_ids=(alert_key(alert),),
            outcome="no response plan matched this alert; recorded, no action taken",
        )
        b = _Builder(run, now)
        b.log("alert_received", Actor.system("azure-monitor"), f"alert {alert.rule_name} ({alert.severity})",
              alert_id=alert.alert_id, resource=resource_id)
        b.log("run_ended", Actor.system(), run.outcome, state=run.state.value)
        return b.build()

    mode = effective_mode(plan.mode, ceiling)
    steps = tuple(
        Step(index=i, action=s.action, kind=CATALOG[s.action].kind, permission=CATALOG[s.action].permission,
             parameters=dict(s.parameters))
        for i, s in enumerate(plan.runbook.steps)
    )
    needs_consent = consent_required(mode, (s.kind for s in steps))
    run = Run(
        run_id=run_id,
        state=RunState.AWAITING_CONSENT if needs_consent else RunState.RUNNING,
        mode=mode, requested_mode=plan.mode, plan_name=plan.name, plan_version=plan_version,
        runbook=plan.runbook.name, resource_id=resource_id, alert=alert, steps=steps,
        approvers=plan.approvers, notify=plan.notify, created_at=now, updated_at=now,
        correlation_key=correlation_key, alert_ids=(alert_key(alert),),
    )
    b = _Builder(run, now)
    b.log("alert_received", Actor.system("azure-monitor"), f"alert {alert.rule_name} ({alert.severity})",
          alert_id=alert.alert_id, resource=resource_id)
    b.log("run_started", Actor.plan(plan.name, plan_version),
          f"plan {plan.name} matched; runbook {plan.runbook.name}; mode {mode.value}",
          plan=plan.name, version=plan_version, mode=mode.value, requested_mode=plan.mode.value,
          ceiling=ceiling.value, steps=[s.action for s in steps])
    if mode is not plan.mode:
        b.log("autonomy_capped", Actor.system("autonomy ceiling"),
              f"plan asks for {plan.mode.value}; the global ceiling is {ceiling.value}, so consent is asked")
    if needs_consent:
        b.send(Queue.CONSENT, "open", {})
    else:
        if any(s.is_write for s in steps):
            b.log("consent_implicit", Actor.plan(plan.name, plan_version),
                  "autonomous mode inside the incident response plan: consent is implicit")
        else:
            b.log("consent_not_needed", Actor.system(), "read-only plan: no consent is asked")
        b.send(Queue.ATTEMPT, "step-0", {"step": 0})
    return b.build()


def join_run(run: Run, alert: Alert, now: dt.datetime) -> Change | None:
    """A repeat of an open run's alert is recorded on that run; a Resolved one cancels a run still
    waiting for consent."""
    key = alert_key(alert)
    if key in run.alert_ids:
        return None
    fired = _alert_ids_with(run.alert_ids, "Fired")
    if alert.condition == "Resolved" and alert.alert_id not in fired:
        return None  # the resolution of a firing this run never took (an older run's, arriving late)
    b = _Builder(replace(run, alert_ids=(*run.alert_ids[-49:], key)), now)
    if alert.condition == "Resolved":
        b.log("alert_resolved", Actor.system("azure-monitor"), f"alert {alert.rule_name} resolved",
              alert_id=alert.alert_id)
        # Cancel only once every firing the run took has resolved: a newer firing still needs the run.
        if run.state is RunState.AWAITING_CONSENT and fired <= _alert_ids_with(b.run.alert_ids, "Resolved"):
            b.end(RunEvent.ALERT_RESOLVED, Actor.system("azure-monitor"),
                  "the alert resolved before consent was given; no action taken")
    else:
        b.log("alert_joined", Actor.system("azure-monitor"),
              f"alert {alert.rule_name} fired again and joined this run", alert_id=alert.alert_id)
    return b.build()


def _alert_ids_with(keys: tuple[str, ...], condition: str) -> set[str]:
    return {parts[0] for parts in (k.split("|") for k in keys) if len(parts) > 1 and parts[1] == condition}


def alert_key(alert: Alert) -> str:
    return f"{alert.alert_id}|{alert.condition}|{alert.fired_at.isoformat()}"


# -------------------------------------------------------------------------------------------- requests


def open_consent_request(run: Run, request_id: str, now: dt.datetime, timeouts: Timeouts) -> Change | None:
    if run.state is not RunState.AWAITING_CONSENT or any(r.kind is RequestKind.CONSENT for r in run.requests):
        return None
    request = Request(request_id=request_id, kind=RequestKind.CONSENT, deadline=now + timeouts.consent,
                      approvers=run.approvers, plan_hash=plan_hash(run))
    return _open_request(run, request, now, f"consent asked of {_names(run)}")


def open_credential_request(
    run: Run, step_index: int, request_id: str, now: dt.datetime, timeouts: Timeouts, claims: str | None = None,
) -> Change | None:
    step = _step(run, step_index)
    if run.state is not RunState.AWAITING_CREDENTIALS or step is None:
        return None
    if step.state is not StepState.AWAITING_CREDENTIALS:
        return None
    if any(r.kind is RequestKind.CREDENTIALS and r.step_index == step_index and r.state is RequestState.PENDING
           for r in run.requests):
        return None
    request = Request(request_id=request_id, kind=RequestKind.CREDENTIALS, deadline=now + timeouts.credentials,
                      approvers=run.approvers, plan_hash=plan_hash(run, step_index), step_index=step_index,
                      claims=claims)
    return _open_request(run, request, now,
                         f"temporary credentials asked of {_names(run)} for step {step_index + 1}")


def _open_request(run: Run, request: Request, now: dt.datetime, summary: str) -> Change:
    b = _Builder(run, now)
    b.set_request(request)
    event = "consent_requested" if request.kind is RequestKind.CONSENT else "credential_requested"
    b.log(event, Actor.system(), summary, request_id=request.request_id, deadline=request.deadline.isoformat(),
          approvers=[a.upn for a in request.approvers], step=request.step_index)
    b.send(Queue.NOTIFICATIONS, f"request-{request.request_id}", {"kind": "request_opened",
                                                                  "request_id": request.request_id})
    b.send(Queue.DEADLINES, f"deadline-{request.request_id}", {"request_id": request.request_id},
           at=request.deadline)
    return b.build()


def _names(run: Run) -> str:
    return ", ".join(a.upn for a in run.approvers)


def is_authorised(principal: Principal, request: Request) -> bool:
    """An approver holds the app role and is named by the plan (by object id or sign-in name)."""
    if APPROVER_ROLE not in principal.roles:
        return False
    return any(a.matches(principal.object_id, principal.name) for a in request.approvers)


def check_decision(run: Run, request_id: str, principal: Principal, seen_plan_hash: str, now: dt.datetime) -> Request:
    """The request a person may decide now, or `DecisionRefused` saying why not."""
    request = run.request(request_id)
    if request is None:
        raise DecisionRefused(404, "no such request")
    if not is_authorised(principal, request):
        raise DecisionRefused(403, f"{principal.name} is not an approver of this plan")
    if request.state is not RequestState.PENDING:
        by = f" by {request.decided_by.name}" if request.decided_by else ""
        at = f" at {request.decided_at.isoformat(timespec='seconds')}" if request.decided_at else ""
        raise DecisionRefused(409, f"this request is already {request.state.value}{by}{at}")
    if now >= request.deadline:
        raise DecisionRefused(410, f"this request expired at {request.deadline.isoformat(timespec='seconds')}")
    if seen_plan_hash != request.plan_hash:
        raise DecisionRefused(409, "the plan you saw is not the plan awaiting a decision; reload the page")
    return request


def decide(
    run: Run,
    request_id: str,
    decision: Decision,
    principal: Principal,
    seen_plan_hash: str,
    now: dt.datetime,
    sealed_assertion: str | None = None,
) -> Change:
    """First decision wins; a decision binds to the exact plan the person saw."""
    request = check_decision(run, request_id, principal, seen_plan_hash, now)
    b = _Builder(run, now)
    actor = principal.actor
    approve = decision is Decision.APPROVE
    target = RequestState.GRANTED if approve else RequestState.DENIED
    decided = replace(request, state=next_request_state(request.state, target), decided_by=actor, decided_at=now)
    if request.kind is RequestKind.CONSENT:
        b.set_request(decided)
        if approve:
            b.log("consent_granted", actor, f"{principal.name} consented to the plan", request_id=request_id)
            b.move(RunEvent.CONSENT_GRANTED)
            b.send(Queue.ATTEMPT, "step-0", {"step": 0})
        else:
            b.log("consent_denied", actor, f"{principal.name} denied consent", request_id=request_id)
            b.end(RunEvent.CONSENT_DENIED, actor, f"consent denied by {principal.name}; no action taken")
        return b.build()

    step_index = request.step_index if request.step_index is not None else -1
    if approve:
        if not sealed_assertion:
            raise DecisionRefused(401, "granting credentials needs your signed-in token; sign in again")
        b.set_request(replace(decided, sealed_assertion=sealed_assertion))
        b.log("credential_granted", actor,
              f"{principal.name} granted temporary credentials for step {step_index + 1}",
              request_id=request_id, step=step_index, scope="https://management.azure.com/user_impersonation")
        b.move(RunEvent.CREDENTIALS_GRANTED)
        b.send(Queue.EXECUTION, f"step-{step_index}-{request_id}", {"step": step_index, "request_id": request_id})
    else:
        b.set_request(decided)
        b.log("credential_denied", actor, f"{principal.name} denied credentials", request_id=request_id,
              step=step_index)
        b.end(RunEvent.CREDENTIALS_DENIED, actor, f"credentials denied by {principal.name}; no action taken")
    return b.build()


def expire(run: Run, request_id: str, now: dt.datetime) -> Change | None:
    request = run.request(request_id)
    if request is None or request.state is not RequestState.PENDING:
        return None
    if now + DEADLINE_TOLERANCE < request.deadline:
        return None
    b = _Builder(run, now)
    b.set_request(replace(request, state=next_request_state(request.state, RequestState.EXPIRED)))
    if request.kind is RequestKind.CONSENT:
        b.log("consent_expired", Actor.system("deadline"), "no consent before the deadline", request_id=request_id)
        b.end(RunEvent.CONSENT_EXPIRED, Actor.system("deadline"), "consent not given in time; no action taken")
    else:
        b.log("credential_expired", Actor.system("deadline"), "no credentials before the deadline",
              request_id=request_id)
        b.end(RunEvent.CREDENTIALS_EXPIRED, Actor.system("deadline"),
              "credentials not granted in time; no action taken")
    return b.build()


# ------------------------------------------------------------------------------------------- execution


@dataclass(frozen=True)
class Claim:
    """The outcome of asking to run a step: `change` to write first, and whether to call ARM after."""

    change: Change | None
    proceed: bool
    reason: str


def claim_step(
    run: Run,
    step_index: int,
    source: CredentialSource,
    message_id: str,
    delivery_count: int,
    now: dt.datetime,
    actor: Actor | None = None,
) -> Claim:
    """Mark a step in flight before its action runs, so a step runs at most once.

    A later delivery of the same message that finds the step still in flight means the host died
    during the call: whether ARM acted is unknown, so the step is not repeated and the run fails.
    """
    step = _step(run, step_index)
    if step is None:
        return Claim(None, False, f"the run has no step {step_index}")
    if run.state.is_terminal:
        return Claim(None, False, f"the run already ended ({run.state.value})")
    if step.state in (StepState.ATTEMPTING, StepState.EXECUTING):
        if step.claim_message_id == message_id and delivery_count > step.claim_delivery:
            b = _Builder(run, now)
            b.set_step(replace(step, state=StepState.FAILED, outcome="interrupted"))
            b.log("action_interrupted", Actor.system(),
                  f"step {step_index + 1} ({step.action}) was in flight when its host stopped; "
                  "it is not repeated so that it runs at most once", step=step_index)
            b.end(RunEvent.STEP_FAILED, Actor.system(),
                  f"step {step_index + 1} interrupted during {step.action}; outcome unknown, not repeated")
            return Claim(b.build(), False, "interrupted")
        return Claim(None, False, "another delivery is running this step")
    expected = StepState.PENDING if source is CredentialSource.AGENT else StepState.AWAITING_CREDENTIALS
    if run.state is not RunState.RUNNING or step.state is not expected:
        return Claim(None, False, f"step is {step.state.value} and run is {run.state.value}")
    if run.current_step() is not step:
        return Claim(None, False, "an earlier step has not finished")
    if source is CredentialSource.DELEGATED and granted_credential(run, step_index) is None:
        return Claim(None, False, "no granted credential for this step")
    _guard_write(run, step)
    b = _Builder(run, now)
    if not step_allowed_in_mode(step, run.mode):
        b.set_step(replace(step, state=StepState.FAILED, outcome="refused: write in a read-only plan"))
        b.end(RunEvent.STEP_FAILED, Actor.system(), "a read-only plan cannot write; no action taken")
        return Claim(b.build(), False, "read-only")
    in_flight = StepState.ATTEMPTING if source is CredentialSource.AGENT else StepState.EXECUTING
    b.set_step(replace(step, state=in_flight, credential_source=source, claim_message_id=message_id,
                       claim_delivery=delivery_count))
    who = actor or Actor.agent()
    b.log("action_attempted", who, f"step {step_index + 1}: {step.action} on {run.resource_id.rsplit('/', 1)[-1]} "
          f"with {'the agent identity' if source is CredentialSource.AGENT else who.name + ' credentials'}",
          step=step_index, action=step.action, identity=source.value)
    return Claim(b.build(), True, "claimed")


def record_outcome(run: Run, step_index: int, outcome: ArmOutcome, now: dt.datetime) -> Change | None:
    step = _step(run, step_index)
    if step is None or step.state not in (StepState.ATTEMPTING, StepState.EXECUTING) or run.state.is_terminal:
        return None
    source = step.credential_source or CredentialSource.AGENT
    granted = granted_credential(run, step_index)
    acted_as = granted.decided_by if source is CredentialSource.DELEGATED and granted and granted.decided_by \
        else Actor.agent()
    b = _Builder(run, now)
    if source is CredentialSource.DELEGATED:
        _revoke(b, step_index)
    if outcome.kind.value == "succeeded":
        b.set_step(replace(step, state=StepState.SUCCEEDED, outcome=f"HTTP {outcome.status}",
                           result=_summary(outcome)))
        b.log("action_executed", acted_as, f"step {step_index + 1} ({step.action}) succeeded",
              step=step_index, action=step.action, identity=source.value, status=outcome.status)
        following = _step(b.run, step_index + 1)
        if following is None:
            b.end(RunEvent.LAST_STEP_SUCCEEDED, Actor.system(), "every step succeeded")
        else:
            b.move(RunEvent.STEP_SUCCEEDED)
            b.send(Queue.ATTEMPT, f"step-{following.index}", {"step": following.index})
        return b.build()
    if outcome.is_challenge and challenge_leads_to_elevation(source):
        b.set_step(replace(step, state=StepState.AWAITING_CREDENTIALS, outcome=f"{outcome.code}",
                           claim_message_id=None, claim_delivery=0))
        b.log("security_challenge", Actor.agent(),
              f"step {step_index + 1} ({step.action}): the agent lacks permission ({outcome.code})",
              step=step_index, code=outcome.code, status=outcome.status, permission=step.permission)
        b.move(RunEvent.STEP_CHALLENGED)
        b.send(Queue.ELEVATION, f"step-{step_index}", {"step": step_index, "claims": outcome.claims})
        return b.build()
    why = (f"the approver's credentials lack permission too ({outcome.code})" if outcome.is_challenge
           else f"{outcome.code}: {outcome.message}")
    b.set_step(replace(step, state=StepState.FAILED, outcome=why[:500]))
    b.log("action_failed", acted_as, f"step {step_index + 1} ({step.action}) failed: {why}"[:1000],
          step=step_index, code=outcome.code, status=outcome.status, identity=source.value)
    b.end(RunEvent.STEP_FAILED, Actor.system(), f"step {step_index + 1} ({step.action}) failed")
    return b.build()


MAX_CREDENTIAL_REQUESTS_PER_STEP = 2


def credentials_unusable(run: Run, step_index: int, reason: str, now: dt.datetime,
                         stale: bool = False) -> Change | None:
    """The on-behalf-of exchange failed: the person cannot lend this access; nothing is done.

    A `stale` grant (the person's sign-in expired between the grant and its use) is not a "no": the
    person is asked again, once, rather than ending the run."""
    step = _step(run, step_index)
    if step is None or step.state is not StepState.EXECUTING or run.state.is_terminal:
        return None
    b = _Builder(run, now)
    _revoke(b, step_index)
    asked = sum(1 for r in run.requests if r.kind is RequestKind.CREDENTIALS and r.step_index == step_index)
    if stale and asked < MAX_CREDENTIAL_REQUESTS_PER_STEP:
        b.set_step(replace(step, state=StepState.AWAITING_CREDENTIALS, outcome="granted sign-in expired",
                           claim_message_id=None, claim_delivery=0))
        b.log("credential_stale", Actor.system("entra-id"),
              f"the granted sign-in expired before step {step_index + 1} ran; asking again", step=step_index)
        b.move(RunEvent.STEP_CHALLENGED)
        b.send(Queue.ELEVATION, f"step-{step_index}-again-{asked}", {"step": step_index})
        return b.build()
    b.set_step(replace(step, state=StepState.FAILED, outcome=reason[:500]))
    b.log("credential_unusable", Actor.system("entra-id"), reason[:1000], step=step_index)
    b.end(RunEvent.STEP_FAILED, Actor.system("entra-id"),
          f"the granted credentials could not be used for step {step_index + 1}; no action taken")
    return b.build()


def granted_credential(run: Run, step_index: int) -> Request | None:
    return next((r for r in run.requests if r.kind is RequestKind.CREDENTIALS and r.step_index == step_index
                 and r.state is RequestState.GRANTED and r.sealed_assertion), None)


def _revoke(b: _Builder, step_index: int) -> None:
    request = granted_credential(b.run, step_index)
    if request is not None:
        b.set_request(replace(request, sealed_assertion=None))
        b.log("credential_revoked", Actor.system(),
              f"delegated credentials for step {step_index + 1} discarded after use", request_id=request.request_id,
              step=step_index)


def _guard_write(run: Run, step: Step) -> None:
    """No write in review mode without a person's consent, whatever sequence of events led here."""
    if step.kind is not ActionKind.WRITE or run.mode is not Mode.REVIEW:
        return
    consented = any(r.kind is RequestKind.CONSENT and r.state is RequestState.GRANTED for r in run.requests)
    if not consented:
        raise IllegalTransition("step", step.state.value, "write without consent")


def _step(run: Run, index: int) -> Step | None:
    return run.steps[index] if 0 <= index < len(run.steps) else None


def _summary(outcome: ArmOutcome) -> dict[str, Any]:
    body = outcome.body or {}
    keep: dict[str, Any] = {k: body[k] for k in ("status", "name", "id") if k in body and isinstance(body[k], str)}
    statuses = body.get("statuses")
    if isinstance(statuses, list):
        keep["statuses"] = [s.get("code") for s in statuses if isinstance(s, dict)][:5]
    return keep




# ----------------------------------------------------------------------------------------- stalled runs


@dataclass(frozen=True)
class StallLimits:
    claim: dt.timedelta  # a step in flight longer than the function timeout (plus margin): its host died
    idle: dt.timedelta  # a run nothing has moved for this long: its next message was lost or dead-lettered
    deadline_grace: dt.timedelta = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Sweep:
    change: Change | None = None
    resend: tuple[OutboundMessage, ...] = ()


def sweep(run: Run, now: dt.datetime, limits: StallLimits) -> Sweep:
    """What a stalled run needs so that it still ends: fail a step whose host died mid-action (never
    repeat it), expire a request whose deadline message was lost, drop a granted credential left
    unused, or send again the message that should have moved it on."""
    if run.state.is_terminal:
        return Sweep()
    idle_for = now - run.updated_at
    in_flight = next((s for s in run.steps if s.state in (StepState.ATTEMPTING, StepState.EXECUTING)), None)
    if in_flight is not None:
        if idle_for < limits.claim:
            return Sweep()
        b = _Builder(run, now)
        if in_flight.credential_source is CredentialSource.DELEGATED:
            _revoke(b, in_flight.index)
        b.set_step(replace(in_flight, state=StepState.FAILED, outcome="interrupted"))
        b.log("action_interrupted", Actor.system("sweeper"),
              f"step {in_flight.index + 1} ({in_flight.action}) was in flight for {idle_for} with no outcome; "
              "it is not repeated so that it runs at most once", step=in_flight.index)
        b.end(RunEvent.STEP_FAILED, Actor.system("sweeper"),
              f"step {in_flight.index + 1} interrupted during {in_flight.action}; outcome unknown, not repeated")
        return Sweep(change=b.build())
    overdue = next((r for r in run.requests if r.state is RequestState.PENDING
                    and now >= r.deadline + limits.deadline_grace), None)
    if overdue is not None:
        return Sweep(change=expire(run, overdue.request_id, now))
    if idle_for < limits.idle:
        return Sweep()
    stale = next((r for r in run.requests if r.sealed_assertion is not None), None)
    if stale is not None and stale.step_index is not None and idle_for >= 2 * limits.idle:
        b = _Builder(run, now)
        _revoke(b, stale.step_index)
        step = run.steps[stale.step_index]
        b.set_step(replace(step, state=StepState.FAILED, outcome="granted credentials went unused"))
        b.end(RunEvent.STEP_FAILED, Actor.system("sweeper"),
              f"the credentials granted for step {stale.step_index + 1} were not used in time; no action taken")
        return Sweep(change=b.build())
    return Sweep(resend=_lost_message(run, now))


def _lost_message(run: Run, now: dt.datetime) -> tuple[OutboundMessage, ...]:
    b = _Builder(run, now)
    key = f"{int(now.timestamp())}"  # a new id: the queue's duplicate detection must not drop it
    step = run.current_step()
    if run.state is RunState.AWAITING_CONSENT and not run.requests:
        b.send(Queue.CONSENT, f"open-{key}", {})
    elif run.state is RunState.RUNNING and step is not None and step.state is StepState.PENDING:
        b.send(Queue.ATTEMPT, f"step-{step.index}-{key}", {"step": step.index})
    elif (run.state is RunState.RUNNING and step is not None and step.state is StepState.AWAITING_CREDENTIALS
          and (granted := granted_credential(run, step.index)) is not None):
        b.send(Queue.EXECUTION, f"step-{step.index}-{granted.request_id}-{key}",
               {"step": step.index, "request_id": granted.request_id})
    elif (run.state is RunState.AWAITING_CREDENTIALS and step is not None
          and not any(r.step_index == step.index and r.state is RequestState.PENDING for r in run.requests)):
        b.send(Queue.ELEVATION, f"step-{step.index}-{key}", {"step": step.index})
    return tuple(b.messages)
