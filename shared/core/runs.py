"""A run's beginning: an alert matched (or not) to a response plan becomes a run; a repeat of its alert
joins it; a resolution may cancel it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import replace

from shared.core.alerts import target_scope
from shared.core.change import Change, ChangeBuilder
from shared.core.guardrails import Effect, Facts, StepToDecide, Verdict, decide
from shared.core.messages import AttemptStep, OpenConsent, RunEnded
from shared.core.model import Actor, Alert, Approver, AuditEvent, Mode, Run, RunState, Step, StepState
from shared.core.plans import PlanBook, ResponsePlan
from shared.core.transitions import RunEvent

MAX_ALERT_KEYS = 50  # the alert keys a run keeps, newest last, for duplicates and resolutions


def alert_key(alert: Alert) -> str:
    return f"{alert.alert_id}|{alert.condition}|{alert.fired_at.isoformat()}"


def alert_verdict(book: PlanBook, plan: ResponsePlan, alert: Alert, resource_id: str, ceiling: Mode,
                  now: dt.datetime, tags: Mapping[str, str] | None = None, app_shadow: bool = False) -> Verdict:
    """What the guardrails (the app's and the plan's) decide of this plan's runbook on this resource."""
    steps = [StepToDecide.of(book.catalog, s.action, s.parameters) for s in plan.runbook.steps]
    facts = Facts(resource_id=resource_id, severity=alert.severity, alert_rule=alert.rule_name, tags=tags)
    return decide(book.guardrails, plan.guardrails, f"plan {plan.name}", plan.mode, steps, facts, ceiling, now,
                  app_shadow=app_shadow)


def start_run(
    run_id: str,
    alert: Alert,
    resource_id: str,
    plan: ResponsePlan | None,
    plan_version: int,
    ceiling: Mode,
    now: dt.datetime,
    correlation_key: str = "",
    verdict: Verdict | None = None,
    missing: Mapping[int, Sequence[str]] | None = None,
) -> Change:
    """The run an alert starts. `verdict`, required with a plan, is the guardrails' (`alert_verdict`, after
    the shell's limits). `missing`, for a shadow run: the permissions the agent's identity lacks for each
    step, as read at the resource."""
    if plan is None:
        run = Run(
            run_id=run_id, state=RunState.UNMATCHED, mode=Mode.REVIEW, plan_name="", plan_version=plan_version,
            runbook="", resource_id=resource_id, alert=alert, steps=(), approvers=(), notify=(), created_at=now,
            updated_at=now, correlation_key=correlation_key, alert_ids=(alert_key(alert),),
            outcome=_unmatched_outcome(alert, resource_id),
        )
        b = ChangeBuilder(run, now)
        b.log("alert_received", Actor.system("azure-monitor"), f"alert {alert.summary}",
              alert_id=alert.alert_id, resource=resource_id)
        b.log("run_ended", Actor.system(), run.outcome, state=run.state.value)
        return b.build()

    if verdict is None:
        raise ValueError("a matched plan starts from the guardrails' verdict (alert_verdict)")
    steps = tuple(
        Step(index=i, action=s.action, kind=s.kind, permission=s.permissions[0], parameters=dict(s.parameters),
             permissions=s.permissions)
        for i, s in enumerate(plan.runbook.steps)
    )
    mode = run_mode(plan.mode, verdict)
    run = Run(
        run_id=run_id, state=opening_state(verdict), mode=mode, requested_mode=plan.mode, plan_name=plan.name,
        plan_version=plan_version, runbook=plan.runbook.name, resource_id=resource_id, alert=alert, steps=steps,
        approvers=plan.approvers, notify=plan.notify, created_at=now, updated_at=now,
        correlation_key=correlation_key, alert_ids=(alert_key(alert),), approval=plan.approval,
        guardrails=verdict.as_record(),
    )
    b = ChangeBuilder(run, now)
    b.log("alert_received", Actor.system("azure-monitor"), f"alert {alert.summary}",
          alert_id=alert.alert_id, resource=resource_id)
    b.log("run_started", Actor.plan(plan.name, plan_version),
          f"plan {plan.name} matched; runbook {plan.runbook.name}; mode {mode.value}",
          plan=plan.name, version=plan_version, mode=mode.value, requested_mode=plan.mode.value,
          ceiling=ceiling.value, steps=[s.action for s in steps])
    open_run(b, verdict, Actor.plan(plan.name, plan_version), missing, approvers=plan.approvers)
    return b.build()


def run_mode(requested: Mode, verdict: Verdict) -> Mode:
    """The mode the run acts in: autonomous only when the guardrails allow its writes without consent."""
    if requested is Mode.READ_ONLY:
        return Mode.READ_ONLY
    return Mode.AUTONOMOUS if verdict.effect is Effect.ALLOW and verdict.writes else Mode.REVIEW


def opening_state(verdict: Verdict) -> RunState:
    if verdict.shadow:
        return RunState.SHADOWED
    return {Effect.DENY: RunState.DENIED, Effect.ASK: RunState.AWAITING_CONSENT,
            Effect.ALLOW: RunState.RUNNING}[verdict.effect]


def open_run(b: ChangeBuilder, verdict: Verdict, plan_actor: Actor, missing: Mapping[int, Sequence[str]] | None,
             approvers: Sequence[Approver]) -> None:
    """The audit and the first message of a new run, from the guardrails' verdict (its state is set by
    `opening_state`): a shadow run ends at once having recorded what would have happened; a denied run
    ends before anything reached ARM; an asked run opens its consent request; an allowed one runs."""
    run = b.run
    record = verdict.as_record()
    b.log("guardrails_decided", Actor.system("guardrails"), f"{verdict.effect.word}: {verdict.reason} "
          f"(decided by {verdict.decided_by})", **record)
    if verdict.shadow:
        b.run = replace(b.run, steps=tuple(replace(s, state=StepState.SKIPPED, outcome="shadow mode: not run")
                                           for s in run.steps))
        outcome = shadow_outcome(verdict, missing, approvers)
        credentials = {"credentials_needed": {str(k): list(v) for k, v in (missing or {}).items() if v},
                       "credentials_known": missing is not None}
        # Kept on the run too, so the run index's summary (and the shadow report) needs no audit read.
        b.run = replace(b.run, outcome=outcome, guardrails={**record, **credentials})
        b.log("shadow_decided", Actor.system("guardrails"), outcome, **record, **credentials)
        b.log("run_ended", Actor.system(), f"run shadowed: {outcome}", state=RunState.SHADOWED.value)
        return
    if verdict.effect is Effect.DENY:
        b.run = replace(b.run, steps=tuple(replace(s, state=StepState.SKIPPED) for s in run.steps),
                        outcome=f"denied by the guardrails: {verdict.reason}; no action taken")
        b.log("run_ended", Actor.system("guardrails"), f"run denied: {b.run.outcome}", state=RunState.DENIED.value)
        b.send(RunEnded(run.run_id), "ended-denied")
        return
    if verdict.effect is Effect.ASK:
        if verdict.limit or verdict.decided_by.startswith(("freeze", "the global autonomy ceiling")):
            b.log("autonomy_capped", Actor.system("guardrails"), verdict.reason, decided_by=verdict.decided_by,
                  limit=verdict.limit, freeze=verdict.freeze)
        b.send(OpenConsent(run.run_id), "open")
        return
    if verdict.writes:
        b.log("consent_implicit", plan_actor, f"consent is implicit: {verdict.reason}", decided_by=verdict.decided_by)
    else:
        b.log("consent_not_needed", Actor.system(), "reads only: no consent is asked")
    b.send(AttemptStep(run.run_id, 0), "step-0")


def shadow_outcome(verdict: Verdict, missing: Mapping[int, Sequence[str]] | None,
                   approvers: Sequence[Approver]) -> str:
    """What a shadow run would have done, in one sentence for the run list."""
    would = {Effect.DENY: "been denied", Effect.ASK: f"asked consent of {', '.join(a.upn for a in approvers)}",
             Effect.ALLOW: "acted autonomously" if verdict.writes else "run its reads"}[verdict.effect]
    if missing is None:
        credentials = "; whether credentials would be needed could not be read"
    else:
        needing = sorted(k + 1 for k, v in missing.items() if v)
        credentials = (f"; temporary credentials would be asked for step(s) {', '.join(map(str, needing))}"
                       if needing else "; the agent's own permissions would do")
    return (f"shadow mode ({verdict.shadow_by}): it would have {would} ({verdict.decided_by})"
            + (credentials if verdict.effect is not Effect.DENY else "") + "; nothing was done and no one was asked")


def _unmatched_outcome(alert: Alert, target: str) -> str:
    # Response plans act on one resource; say when the alert can never lead to an action at all.
    if not target:
        return (f"the alert names no target resource ({alert.monitoring_service or 'its service'} sends none): "
                "recorded; a run can never act on it")
    scope = target_scope(target)
    if scope != "resource":
        return (f"the alert targets a whole {scope}; runbooks act on single resources: recorded, "
                "no action taken")
    return "no response plan matched this alert; recorded, no action taken"


def took_firing(run: Run, alert: Alert, joined: frozenset[str] = frozenset()) -> bool:
    """Whether the run took a firing of this alert (itself, or as a repeat recorded beside it: `joined`),
    so that a resolution of it belongs to the run."""
    return alert.alert_id in _alert_ids_with((*run.alert_ids, *joined), "Fired")


def join_record(run: Run, alert: Alert, now: dt.datetime) -> AuditEvent | None:
    """The audit line a repeat firing adds to its open run, or None for the firing that started it.

    A repeat changes nothing else in the run, so it is recorded beside it (a line of its own in the run's
    audit, written insert-if-absent, which also drops its duplicates) without rewriting the run entity:
    in a storm, thousands of repeats then never contend on one run's ETag."""
    key = alert_key(alert)
    if key in run.alert_ids:
        return None
    return AuditEvent(0, "alert_joined", now, Actor.system("azure-monitor"),
                      f"alert {alert.summary} fired again and joined this run",
                      {"alert_id": alert.alert_id, "alert_key": key})


def join_run(run: Run, alert: Alert, now: dt.datetime, joined: frozenset[str] = frozenset()) -> Change | None:
    """A resolution of a run's alert (or a repeat firing, when one is recorded in the run itself); a
    Resolved alert cancels a run still waiting for consent once every firing it took (`run.alert_ids`
    and the `joined` repeats recorded beside it) has resolved."""
    key = alert_key(alert)
    if key in run.alert_ids:
        return None
    fired = _alert_ids_with((*run.alert_ids, *joined), "Fired")
    if alert.condition == "Resolved" and not took_firing(run, alert, joined):
        return None  # the resolution of a firing this run never took (an older run's, arriving late)
    b = ChangeBuilder(replace(run, alert_ids=(*run.alert_ids[-(MAX_ALERT_KEYS - 1):], key)), now)
    if alert.condition == "Resolved":
        b.log("alert_resolved", Actor.system("azure-monitor"), f"alert {alert.summary} resolved",
              alert_id=alert.alert_id)
        # Cancel only once every firing the run took has resolved: a newer firing still needs the run.
        before_consent = run.state is RunState.AWAITING_CONSENT or (
            run.state is RunState.PAUSED and run.pause is not None and run.pause.resume_to is RunState.AWAITING_CONSENT)
        if before_consent and fired <= _alert_ids_with((*b.run.alert_ids, *joined), "Resolved"):
            b.end(RunEvent.ALERT_RESOLVED, Actor.system("azure-monitor"),
                  "the alert resolved before consent was given; no action taken")
    else:
        b.log("alert_joined", Actor.system("azure-monitor"),
              f"alert {alert.summary} fired again and joined this run", alert_id=alert.alert_id)
    return b.build()


def _alert_ids_with(keys: tuple[str, ...], condition: str) -> set[str]:
    return {parts[0] for parts in (k.split("|") for k in keys) if len(parts) > 1 and parts[1] == condition}
