"""A run's beginning: an alert matched (or not) to a response plan becomes a run; a repeat of its alert
joins it; a resolution may cancel it."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from shared.core.alerts import target_scope
from shared.core.change import Change, ChangeBuilder
from shared.core.messages import AttemptStep, OpenConsent
from shared.core.model import Actor, Alert, AuditEvent, Mode, Run, RunState, Step
from shared.core.modes import consent_required, effective_mode
from shared.core.plans import ResponsePlan
from shared.core.transitions import RunEvent

MAX_ALERT_KEYS = 50  # the alert keys a run keeps, newest last, for duplicates and resolutions


def alert_key(alert: Alert) -> str:
    return f"{alert.alert_id}|{alert.condition}|{alert.fired_at.isoformat()}"


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
            outcome=_unmatched_outcome(alert, resource_id),
        )
        b = ChangeBuilder(run, now)
        b.log("alert_received", Actor.system("azure-monitor"), f"alert {alert.summary}",
              alert_id=alert.alert_id, resource=resource_id)
        b.log("run_ended", Actor.system(), run.outcome, state=run.state.value)
        return b.build()

    mode = effective_mode(plan.mode, ceiling)
    steps = tuple(
        Step(index=i, action=s.action, kind=s.kind, permission=s.permissions[0], parameters=dict(s.parameters),
             permissions=s.permissions)
        for i, s in enumerate(plan.runbook.steps)
    )
    needs_consent = consent_required(mode, (s.kind for s in steps))
    run = Run(
        run_id=run_id,
        state=RunState.AWAITING_CONSENT if needs_consent else RunState.RUNNING,
        mode=mode, requested_mode=plan.mode, plan_name=plan.name, plan_version=plan_version,
        runbook=plan.runbook.name, resource_id=resource_id, alert=alert, steps=steps,
        approvers=plan.approvers, notify=plan.notify, created_at=now, updated_at=now,
        correlation_key=correlation_key, alert_ids=(alert_key(alert),), approval=plan.approval,
    )
    b = ChangeBuilder(run, now)
    b.log("alert_received", Actor.system("azure-monitor"), f"alert {alert.summary}",
          alert_id=alert.alert_id, resource=resource_id)
    b.log("run_started", Actor.plan(plan.name, plan_version),
          f"plan {plan.name} matched; runbook {plan.runbook.name}; mode {mode.value}",
          plan=plan.name, version=plan_version, mode=mode.value, requested_mode=plan.mode.value,
          ceiling=ceiling.value, steps=[s.action for s in steps])
    if mode is not plan.mode:
        b.log("autonomy_capped", Actor.system("autonomy ceiling"),
              f"plan asks for {plan.mode.value}; the global ceiling is {ceiling.value}, so consent is asked")
    if needs_consent:
        b.send(OpenConsent(run_id), "open")
    else:
        if any(s.is_write for s in steps):
            b.log("consent_implicit", Actor.plan(plan.name, plan_version),
                  "autonomous mode inside the incident response plan: consent is implicit")
        else:
            b.log("consent_not_needed", Actor.system(), "read-only plan: no consent is asked")
        b.send(AttemptStep(run_id, 0), "step-0")
    return b.build()


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
        if run.state is RunState.AWAITING_CONSENT and fired <= _alert_ids_with((*b.run.alert_ids, *joined),
                                                                               "Resolved"):
            b.end(RunEvent.ALERT_RESOLVED, Actor.system("azure-monitor"),
                  "the alert resolved before consent was given; no action taken")
    else:
        b.log("alert_joined", Actor.system("azure-monitor"),
              f"alert {alert.summary} fired again and joined this run", alert_id=alert.alert_id)
    return b.build()


def _alert_ids_with(keys: tuple[str, ...], condition: str) -> set[str]:
    return {parts[0] for parts in (k.split("|") for k in keys) if len(parts) > 1 and parts[1] == condition}
