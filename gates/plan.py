"""Stage 1 — plan: an alert from the `alerts` queue becomes a run (or joins the open one)."""

from __future__ import annotations

import datetime as dt
import logging

import azure.functions as func

from gates.shell import create, transact
from shared.core.alerts import parse_alert
from shared.core.correlation import correlation_key, joins_open_run
from shared.core.errors import ConcurrencyConflict, MalformedAlert
from shared.core.model import Alert, Run
from shared.core.runs import alert_key, join_record, join_run, start_run
from shared.services import Services, ServicesProvider
from shared.topology import SERVICE_BUS_CONNECTION, Queue

logger = logging.getLogger("sre_gates")
STAGE = "plan"


def handle_alert(services: Services, body: bytes, message_id: str) -> list[str]:
    """The ids of the runs the alert started or joined; an unreadable alert is kept with its reason."""
    try:
        alert = parse_alert(body)
    except MalformedAlert as error:
        now = services.clock.now()
        services.rejected_alerts.add(message_id, error.reason, body.decode("utf-8", "replace"), now)
        if services.audit_sink is not None:
            services.audit_sink.alert_rejected(message_id, error.reason)
        return []
    # A multi-resource alert makes one run per resource: a run acts only on the resource it names.
    return [run_id for resource_id in alert.target_resource_ids
            if (run_id := _handle_target(services, alert, resource_id, message_id))]


def _handle_target(services: Services, alert: Alert, resource_id: str, trigger: str) -> str | None:
    key = correlation_key(alert.rule_id, resource_id)
    now = services.clock.now()
    if alert.condition == "Resolved":
        existing = services.correlations.get(key)
        if existing is None:
            logger.info("resolved alert %s has no run to close", alert.alert_id)
            return None
        joined = services.runs.joined_alerts(existing.run_id)
        transact(services, existing.run_id, lambda run: join_run(run, alert, now, joined), STAGE, trigger=trigger)
        return existing.run_id
    for _ in range(8):
        existing = services.correlations.get(key)
        if existing is None:
            run_id = services.ids()
            if services.correlations.create(key, run_id, now):
                return _start(services, run_id, alert, resource_id, key, trigger)
            continue  # another delivery created it at the same instant: join that one
        run = services.runs.get_run(existing.run_id)
        if run is None:
            # The correlation was written and the host stopped before the run was: finish that run.
            return _start(services, existing.run_id, alert, resource_id, key, trigger)
        key_of_alert = alert_key(alert)
        if key_of_alert in run.alert_ids:
            # The firing that started this run, again: a redelivery (which sends the outbox again if
            # the host died before sending it), even after the run ended.
            transact(services, run.run_id, lambda r: join_run(r, alert, now), STAGE, trigger=trigger, run=run)
            return run.run_id
        if joins_open_run(run, existing.opened_at, now, services.policy.cooldown):
            _record_repeat(services, run, alert, now)
            return run.run_id
        if services.runs.join_recorded(run.run_id, key_of_alert):
            return run.run_id  # a repeat this run took before it ended, delivered again
        run_id = services.ids()
        if services.correlations.replace(existing, run_id, now):
            return _start(services, run_id, alert, resource_id, key, trigger)
    raise ConcurrencyConflict(f"alert {alert.alert_id}: correlation kept changing")


def _record_repeat(services: Services, run: Run, alert: Alert, now: dt.datetime) -> None:
    event = join_record(run, alert, now)
    if event is None:
        return
    recorded = services.runs.record_join(run.run_id, alert_key(alert), event)
    if recorded and services.audit_sink is not None:
        services.audit_sink.emit(run, event, STAGE)


def _start(services: Services, run_id: str, alert: Alert, resource_id: str, key: str, trigger: str) -> str:
    now = services.clock.now()
    policy = services.policy
    plan = policy.plans.match(alert, resource_id)
    change = start_run(run_id, alert, resource_id, plan, policy.plans.version, policy.ceiling, now, key)
    if not create(services, change, STAGE, trigger=trigger):
        transact(services, run_id, lambda run: join_run(run, alert, now), STAGE, trigger=trigger)
    return run_id


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("plan")
    @bp.service_bus_queue_trigger(arg_name="msg", queue_name=Queue.ALERTS.value, connection=SERVICE_BUS_CONNECTION)
    def plan(msg: func.ServiceBusMessage) -> None:
        handle_alert(services(), msg.get_body(), msg.message_id or "")

    return bp
