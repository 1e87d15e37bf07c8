"""Stage 1 — plan: an alert from the `alerts` queue becomes a run (or joins the open one).

A replay (`POST /api/shadow/replay`) sends stored alerts down this same path with the application property
`gates-replay`: each is decided in shadow mode, under a correlation namespace of its own (so it never joins,
dedupes against or changes a real run, nor a real alert's status row), and correlated by when the alert
fired, so a replayed storm groups as the real one would have."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import List  # noqa: UP035  the worker's batch annotation check (see blueprint)

import azure.functions as func

from gates.guardrails import agent_missing_permissions, resource_tags, within_limits
from gates.shell import ahead, create, transact
from shared.core.alert_status import TargetOutcome, TargetResult, intake_key, planned, written_by_plan_stage
from shared.core.alerts import limits_for_queue, parse_alert
from shared.core.correlation import correlation_key, joins_open_run, replay_key, replay_of
from shared.core.errors import ConcurrencyConflict, MalformedAlert
from shared.core.model import Alert, AuditEvent, OutboundMessage, Run
from shared.core.runs import alert_key, alert_verdict, join_record, join_run, start_run, took_firing
from shared.ports import MAX_JOINS_AT_ONCE, Correlation, JoinResult
from shared.run_memory import Remembered
from shared.services import Services, ServicesProvider
from shared.topology import SERVICE_BUS_CONNECTION, Queue

logger = logging.getLogger("sre_gates")
STAGE = "plan"
REPLAY_PROPERTY = "gates-replay"  # the application property that marks a replayed alert, naming its replay
REPLAY_MESSAGE_PREFIX = "replay-"  # a replay's message ids (gates/shadow.py)
_REPLAY_ID = re.compile(r"[0-9a-f]{16}")
FIRST_ID_PROPERTY = "gates-first-id"  # a message sent again after failing in a batch: the id it first came with
RETRY_PROPERTY = "gates-retry"  # how often it was sent again
MAX_RETRIES = 5
PLAN_CONCURRENCY = 8  # alerts of a batch handled at once: what maxConcurrentCalls ran one message at a time
_POOL = ThreadPoolExecutor(PLAN_CONCURRENCY, thread_name_prefix="plan")


def handle_alert(services: Services, body: bytes, message_id: str, replay: str = "") -> list[str]:
    """The ids of the runs the alert started or joined; an unreadable alert is kept with its reason,
    and what became of a readable one is kept under its key (GET /api/alerts/{key}). With `replay`, the
    alert is one a replay sent again: decided in shadow mode in the replay's own namespace."""
    alert = _read(services, body, message_id, replay)
    return [] if alert is None else _plan(services, alert, message_id, replay)


def _read(services: Services, body: bytes, message_id: str, replay: str) -> Alert | None:
    """The alert, or None when it was set aside (kept in rejected alerts with the reason)."""
    if replay and not _REPLAY_ID.fullmatch(replay):
        # Only this app marks replays; anything else there is set aside rather than guessed at.
        services.rejected_alerts.add(message_id, f"{REPLAY_PROPERTY} {replay[:40]!r} is not a replay id this app "
                                     "issued", body.decode("utf-8", "replace"), services.clock.now())
        return None
    if not replay and message_id.startswith(REPLAY_MESSAGE_PREFIX):
        # A replay's message that lost its marker (resubmitted from the dead-letter queue, say) must not
        # become a real alert that acts: it is set aside, saying why.
        services.rejected_alerts.add(message_id, f"a replayed alert without its {REPLAY_PROPERTY} property: not "
                                     "decided for real", body.decode("utf-8", "replace"), services.clock.now())
        return None
    try:
        # The same limits as at the intake: a body put straight on the queue gets no further than one posted.
        return parse_alert(body, limits_for_queue(services.policy.max_message_bytes))
    except MalformedAlert as error:
        now = services.clock.now()
        services.rejected_alerts.add(message_id, error.reason, body.decode("utf-8", "replace"), now)
        if services.audit_sink is not None:
            services.audit_sink.alert_rejected(message_id, error.reason)
        return None


def _plan(services: Services, alert: Alert, message_id: str, replay: str,
          joined: TargetResult | None = None) -> list[str]:
    # A multi-resource alert makes one run per resource: a run acts only on the resource it names. An
    # alert that names no target (a budget alert) is one run that can never act. `joined`: its one
    # target's repeat, recorded already with others of its run (`_join_together`).
    results = [joined] if joined is not None else [_handle_target(services, alert, target, message_id, replay)
                                                   for target in alert.target_resource_ids or ("",)]
    if replay:
        return [r.run_id for r in results if r.run_id]  # a real alert's status row is never a replay's
    status = planned(intake_key(alert), alert, results, services.clock.now())
    if written_by_plan_stage(results, message_id, status.key):
        services.alert_status.put(status)  # otherwise the runs hold the outcome: no write (gates/alert_lookup.py)
    for result in results:
        if result.outcome is TargetOutcome.NO_OPEN_RUN:
            logger.info("resolved alert %s (key %s) has no run to close on %s", alert.alert_id, status.key,
                        result.target or "(no target)")
    return list(status.runs)


@dataclass(frozen=True)
class Delivered:
    """One message of a batch the alerts queue delivered: its body, id and application properties."""

    body: bytes
    message_id: str
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def replay(self) -> str:
        return self.properties.get(REPLAY_PROPERTY, "")

    @property
    def handled_as(self) -> str:
        # A message sent again after failing in a batch is handled under the id it first came with.
        return self.properties.get(FIRST_ID_PROPERTY) or self.message_id

    @property
    def retries(self) -> int:
        value = self.properties.get(RETRY_PROPERTY, "0")
        return int(value) if value.isdigit() else MAX_RETRIES


def handle_alerts(services: Services, batch: Sequence[Delivered]) -> None:
    """A batch from the alerts queue, each alert as `handle_alert` would decide it alone, but the repeats
    of one remembered run recorded in one transaction, and the alerts handled `PLAN_CONCURRENCY` at a
    time (the runtime settles a batch as one and runs one batch at a time).

    One message that fails does not fail the batch: the runtime would abandon every message in it, and
    the good ones would share the bad one's delivery count to the dead-letter queue. It is sent to the
    queue again (under its first id, `FIRST_ID_PROPERTY`) and, after `MAX_RETRIES`, kept in rejected
    alerts with the error. Only a batch in which every message failed (storage down, say) fails, so the
    broker redelivers it whole, and dead-letters it in the end, as it would one message."""
    alerts: list[Alert | None] = []
    failed: list[tuple[Delivered, BaseException]] = []
    for delivered in batch:
        try:
            alerts.append(_read(services, delivered.body, delivered.handled_as, delivered.replay))
        except Exception as error:  # isolated: the message is sent again below
            alerts.append(None)
            failed.append((delivered, error))
    joined = _join_together(services, batch, alerts)

    def plan_one(index: int) -> BaseException | None:
        alert, delivered = alerts[index], batch[index]
        if alert is None:
            return None
        try:
            _plan(services, alert, delivered.handled_as, delivered.replay, joined.get(index))
        except Exception as error:  # isolated: the message is sent again below
            return error
        return None

    for index, outcome in enumerate(_POOL.map(plan_one, range(len(batch)))):
        if outcome is not None:
            failed.append((batch[index], outcome))
    if failed and len(failed) == len(batch):
        raise failed[0][1]
    for delivered, cause in failed:
        _send_again(services, delivered, cause)


def _join_together(services: Services, batch: Sequence[Delivered],
                   alerts: list[Alert | None]) -> dict[int, TargetResult]:
    """The repeats in the batch of runs this host remembers as taking them, recorded together: one
    transaction per run (up to `MAX_JOINS_AT_ONCE` lines), on the run's marker as a single repeat is
    (`_record_repeat_if_open`); by index in the batch. A transaction that does not go through (one of
    its alerts recorded already, the run ended, an error) leaves its alerts to be decided one by one."""
    now = services.clock.now()
    groups: dict[str, list[tuple[int, str, AuditEvent]]] = defaultdict(list)
    runs: dict[str, Run] = {}
    for index, alert in enumerate(alerts):
        if alert is None or batch[index].replay or alert.condition == "Resolved" \
                or len(alert.target_resource_ids) != 1:
            continue
        # Only what this host remembers: a correlation it would have to read is read one by one.
        existing = services.correlations.get_known(correlation_key(alert.rule_id, alert.target_resource_ids[0]))
        known = services.recent_runs.get(existing.run_id) if existing is not None else None
        if existing is None or known is None or not known.marked \
                or not _takes_repeat(services, known.run, existing, alert, now):
            continue
        key = alert_key(alert)
        event = join_record(known.run, alert, now)
        group = groups[known.run.run_id]
        if event is not None and all(key != taken for _, taken, _ in group):  # the same alert twice: one by one
            group.append((index, key, event))
            runs[known.run.run_id] = known.run
    chunks = [(run_id, group[start:start + MAX_JOINS_AT_ONCE]) for run_id, group in groups.items()
              for start in range(0, len(group), MAX_JOINS_AT_ONCE)]

    def record(chunk: tuple[str, list[tuple[int, str, AuditEvent]]]) -> dict[int, TargetResult]:
        run_id, lines = chunk
        if len(lines) < 2:
            return {}  # alone, it costs the same one by one
        try:
            recorded = services.runs.record_joins_if_open(run_id, [(key, event) for _, key, event in lines])
        except Exception:  # decided one by one, where an error is the message's own
            logger.warning("run %s: %d repeats not recorded together", run_id, len(lines), exc_info=True)
            return {}
        if recorded is not JoinResult.JOINED:
            return {}
        if services.audit_sink is not None:
            for _, _, event in lines:
                services.audit_sink.emit(runs[run_id], event, STAGE)  # the run as remembered, as one repeat
        return {index: TargetResult(_target(alerts[index]), TargetOutcome.JOINED, run_id) for index, _, _ in lines}

    joined: dict[int, TargetResult] = {}
    for found in _POOL.map(record, chunks):
        joined.update(found)
    return joined


def _target(alert: Alert | None) -> str:
    return alert.target_resource_ids[0] if alert is not None and alert.target_resource_ids else ""


def _send_again(services: Services, delivered: Delivered, error: BaseException) -> None:
    """A message that failed in a batch whose others did not: sent to the queue again, or, after
    `MAX_RETRIES`, kept with the error in rejected alerts, where the dead-letter queue would have kept it."""
    logger.warning("alert message %s failed (%s: %s); retry %d", delivered.handled_as, type(error).__name__, error,
                   delivered.retries + 1, exc_info=error)
    try:
        document = json.loads(delivered.body)
    except ValueError:
        document = None
    if delivered.retries >= MAX_RETRIES or not isinstance(document, dict):
        services.rejected_alerts.add(delivered.handled_as, f"failed {delivered.retries + 1} time(s) in a batch: "
                                     f"{type(error).__name__}: {str(error)[:500]}",
                                     delivered.body.decode("utf-8", "replace"), services.clock.now())
        return
    retry = delivered.retries + 1
    properties = {**delivered.properties, FIRST_ID_PROPERTY: delivered.handled_as, RETRY_PROPERTY: str(retry)}
    services.bus.send([OutboundMessage(queue=Queue.ALERTS.value, message_id=f"{delivered.handled_as[:120]}~{retry}",
                                       body=document, correlation_id=delivered.handled_as[-128:],
                                       properties=properties)])


def _handle_target(services: Services, alert: Alert, resource_id: str, trigger: str,
                   replay: str = "") -> TargetResult:
    key = replay_key(replay, alert.rule_id, resource_id) if replay else correlation_key(alert.rule_id, resource_id)
    now = services.clock.now()
    # A replay correlates by when each alert fired: replayed within seconds, the firings of hours group
    # into runs as they did (or would have) when they came.
    at = alert.fired_at if replay else now
    if alert.condition == "Resolved":
        existing = services.correlations.get(key)
        run = services.runs.get_run(existing.run_id) if existing is not None else None
        joined = services.runs.joined_alerts(run.run_id) if run is not None else frozenset()
        if run is None or not took_firing(run, alert, joined):
            return TargetResult(resource_id, TargetOutcome.NO_OPEN_RUN)
        outcome = TargetOutcome.DUPLICATE if alert_key(alert) in run.alert_ids else TargetOutcome.RESOLVED
        # A duplicate resolution changes nothing, but sends what an interrupted first delivery left unsent.
        transact(services, run.run_id, lambda r: join_run(r, alert, now, joined), STAGE, trigger=trigger, run=run)
        return TargetResult(resource_id, outcome, run.run_id)
    for _ in range(8):
        existing = services.correlations.get(key)
        if existing is None:
            run_id = services.ids()
            if services.correlations.create(key, run_id, at):
                return _start(services, run_id, alert, resource_id, key, trigger, replay)
            continue  # another delivery created it at the same instant: join that one
        known = services.recent_runs.get(existing.run_id)
        marked = known.marked if known is not None else True
        if known is not None and known.marked and _takes_repeat(services, known.run, existing, alert, at):
            recorded = _record_repeat_if_open(services, known.run, alert, now)
            if recorded is not JoinResult.NOT_OPEN:
                outcome = TargetOutcome.JOINED if recorded is JoinResult.JOINED else TargetOutcome.DUPLICATE
                return TargetResult(resource_id, outcome, known.run.run_id)
            # The run ended since it was remembered (or was written before runs had a marker): decide on
            # the run as read, exactly as without the memory.
            marked = False
        joined_before = _joined_before(services, existing.run_id, alert, known)
        run = services.runs.get_run(existing.run_id)
        if run is None:
            # The correlation was written and the host stopped before the run was: finish that run.
            return _start(services, existing.run_id, alert, resource_id, key, trigger, replay)
        services.recent_runs.remember(run, marked=marked)
        key_of_alert = alert_key(alert)
        if key_of_alert in run.alert_ids:
            # The firing that started this run, again: a redelivery (which sends the outbox again if
            # the host died before sending it), even after the run ended.
            transact(services, run.run_id, lambda r: join_run(r, alert, now), STAGE, trigger=trigger, run=run)
            return TargetResult(resource_id, TargetOutcome.DUPLICATE, run.run_id)
        if joins_open_run(run, existing.opened_at, at, services.policy.cooldown, services.policy.plans.version,
                          _shadows_now(services, run)):
            outcome = TargetOutcome.JOINED if _record_repeat(services, run, alert, now) else TargetOutcome.DUPLICATE
            return TargetResult(resource_id, outcome, run.run_id)
        if joined_before():
            # a repeat this run took before it ended, delivered again
            return TargetResult(resource_id, TargetOutcome.DUPLICATE, run.run_id)
        run_id = services.ids()
        if services.correlations.replace(existing, run_id, at):
            return _start(services, run_id, alert, resource_id, key, trigger, replay)
    raise ConcurrencyConflict(f"alert {alert.alert_id}: correlation kept changing")


def _joined_before(services: Services, run_id: str, alert: Alert, known: Remembered | None) -> Callable[[], bool]:
    """Whether the run recorded this firing as a repeat (a join line) before it ended, to ask once the run
    is read. A run remembered ended takes no repeat: its answer is read while the run is (`alert_ids` only
    grows, so a firing the memory holds is decided on the run as read and needs no such read)."""
    if known is not None and known.run.state.is_terminal and alert_key(alert) not in known.run.alert_ids:
        return ahead(services.runs.join_recorded, run_id, alert_key(alert)).result
    return lambda: services.runs.join_recorded(run_id, alert_key(alert))


def _takes_repeat(services: Services, run: Run, correlation: Correlation, alert: Alert, at: dt.datetime) -> bool:
    """Whether the remembered run takes this firing as a repeat, as far as the memory can tell: a firing
    the run holds (the one that started it, delivered again) is decided on the run as read, since a
    redelivery may have to send what the first delivery left unsent."""
    return alert_key(alert) not in run.alert_ids and joins_open_run(
        run, correlation.opened_at, at, services.policy.cooldown, services.policy.plans.version,
        _shadows_now(services, run))


def _shadows_now(services: Services, run: Run) -> bool:
    """Whether shadow mode still holds for the run's plan as the app stands now (a replay's runs always)."""
    book = services.policy.plans
    plan = next((p for p in book.plans if p.name == run.plan_name), None)
    return (services.policy.shadow or book.guardrails.shadow or (plan is not None and plan.guardrails.shadow)
            or bool(replay_of(run.correlation_key)))


def _record_repeat_if_open(services: Services, run: Run, alert: Alert, now: dt.datetime) -> JoinResult:
    """A repeat of a remembered run in one request, if the run's marker says it still takes repeats."""
    event = join_record(run, alert, now)
    if event is None:  # the run holds this firing: not a repeat (`_takes_repeat` sends it to the read path)
        return JoinResult.NOT_OPEN
    joined = services.runs.record_join_if_open(run.run_id, alert_key(alert), event)
    if joined is JoinResult.JOINED and services.audit_sink is not None:
        services.audit_sink.emit(run, event, STAGE)  # the run as remembered: its state may have moved on
    return joined


def _record_repeat(services: Services, run: Run, alert: Alert, now: dt.datetime) -> bool:
    """Whether this repeat was recorded now (False: it was, by an earlier delivery of it)."""
    event = join_record(run, alert, now)
    if event is None:
        return False
    recorded = services.runs.record_join(run.run_id, alert_key(alert), event)
    if recorded and services.audit_sink is not None:
        services.audit_sink.emit(run, event, STAGE)
    return recorded


def _start(services: Services, run_id: str, alert: Alert, resource_id: str, key: str,
           trigger: str, replay: str = "") -> TargetResult:
    now = services.clock.now()
    policy = services.policy
    book = policy.plans
    plan = book.match(alert, resource_id)
    verdict, missing = None, None
    if plan is not None:
        tags = (resource_tags(services, book.catalog, resource_id) if book.guardrails.needs_tags(plan.guardrails)
                else None)
        verdict = alert_verdict(book, plan, alert, resource_id, policy.ceiling, now, tags, app_shadow=policy.shadow)
        if replay:
            verdict = replace(verdict, shadow=True, shadow_by=f"replay {replay}")
        # A replay counts its limits by when each alert fired, as they would have been counted then.
        verdict = within_limits(services, verdict, run_id, resource_id, alert.rule_id if alert.rule_name else None,
                                alert.fired_at if replay else now)
        if verdict.shadow:
            missing = agent_missing_permissions(services, resource_id, [s.permissions for s in plan.runbook.steps])
    change = start_run(run_id, alert, resource_id, plan, book.version, policy.ceiling, now, key, verdict, missing)
    if create(services, change, STAGE, trigger=trigger):
        services.recent_runs.remember(change.run)  # its repeats are recorded without reading it
    else:
        transact(services, run_id, lambda run: join_run(run, alert, now), STAGE, trigger=trigger)
    return TargetResult(resource_id, TargetOutcome.STARTED, run_id)


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("plan")
    @bp.service_bus_queue_trigger(arg_name="msgs", queue_name=Queue.ALERTS.value, connection=SERVICE_BUS_CONNECTION,
                                  cardinality=func.Cardinality.MANY)
    # typing.List: the Python worker's check of a batch trigger's annotation does not know list[...].
    def plan(msgs: List[func.ServiceBusMessage]) -> None:  # noqa: UP006
        handle_alerts(services(), [Delivered(m.get_body(), m.message_id or "",
                                             {str(k): str(v) for k, v in (m.application_properties or {}).items()})
                                   for m in msgs])

    return bp
