"""What became of an accepted alert, kept under its key: the intake's status URL.

The intake writes `queued` when it accepts an alert, naming the correlation key of each target (rule
and resource). Where the plan stage's outcome is written in the runs anyway (a run started, a repeat
joined, a resolution recorded) it writes nothing more, and whoever reads the status derives it: the
correlation names the run (or the runs it named before), and the run holds the alert's key or a joined
line for it (`target_outcome`, `derived`). Where the outcome leaves no trace in a run (a resolution no
run took, a duplicate) or the alert came straight to the queue, with no row from the intake, the plan
stage writes `planned` itself (`written_by_plan_stage`). A person reads it at GET /api/alerts/{key};
the intake reads it to answer a duplicate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from enum import StrEnum

from shared.core.correlation import correlation_key
from shared.core.model import Alert, Run
from shared.core.runs import alert_key


class AlertState(StrEnum):
    QUEUED = "queued"  # accepted, waiting for the plan stage
    PLANNED = "planned"  # the plan stage took it: `runs` and `outcome` say how
    REFUSED = "refused"  # accepted as readable, then refused on the way to the queue (`outcome` says why)


class TargetOutcome(StrEnum):
    STARTED = "started"
    JOINED = "joined"  # a repeat within the open run's window: an `alert_joined` audit line on it
    DUPLICATE = "duplicate"  # the run took this very alert already
    RESOLVED = "resolved"  # a resolution recorded on the run that took the firing
    NO_OPEN_RUN = "no open run"  # a resolution no run took the firing of


@dataclass(frozen=True)
class TargetResult:
    target: str  # the resource, resource group or subscription; "" for an alert that names none
    outcome: TargetOutcome
    run_id: str | None = None


@dataclass(frozen=True)
class AlertStatus:
    key: str
    state: AlertState
    alert_id: str
    condition: str
    received_at: dt.datetime
    runs: tuple[str, ...] = ()
    outcome: str = ""
    # Each target and its correlation key, as the intake saw them, and the alert's key in runs
    # (`alert_key`): where a reader finds the run(s) and what the alert did there.
    targets: tuple[tuple[str, str], ...] = ()
    alert_key: str = ""


def intake_key(alert: Alert) -> str:
    """The alert's key: one per (alert, condition, fired time). The alerts queue's message id (so the
    same alert posted twice is one message) and the key its status is kept under."""
    return hashlib.sha256(alert_key(alert).encode()).hexdigest()[:64]


# How far the alerting service's clock may run ahead of ours: an alert fired this far in the future is on time.
CLOCK_SKEW = dt.timedelta(minutes=1)


def sends_beside_status(fired_at: dt.datetime, now: dt.datetime, duplicate_window: dt.timedelta) -> bool:
    """Whether the intake may send an alert to the queue while it writes the alert's status row, rather than
    after the write has shown the alert is new.

    It may when the queue would drop the message if the alert was posted before: its id is the alert's key,
    which includes when the alert fired, and the queue drops an id it took within its duplicate-detection
    window. Taken this way only while the alert fired at most half a window ago (and at most `CLOCK_SKEW` in
    the future), two posts of one alert both sent beside their status writes are less than a window apart;
    and a post written first (the alert older than that) comes after every post sent beside. Not covered: a
    post made more than `CLOCK_SKEW` before the alert fired, which takes a clock far off or a forged time
    (and a caller holding the function key can post a new alert anyway). Otherwise (a late retry, a
    resolution of an old firing) the status is written first and a known alert is not sent again."""
    age = now - fired_at
    return duplicate_window > 2 * CLOCK_SKEW and -CLOCK_SKEW <= age <= duplicate_window / 2


def queued(key: str, alert: Alert, now: dt.datetime) -> AlertStatus:
    targets = tuple((t, correlation_key(alert.rule_id, t)) for t in alert.target_resource_ids or ("",))
    return AlertStatus(key, AlertState.QUEUED, alert.alert_id, alert.condition, now,
                       outcome="accepted; waiting for the plan stage", targets=targets, alert_key=alert_key(alert))


# Outcomes the runs record anyway (the run's alert, a key it took, a joined line beside it).
IN_THE_RUN = frozenset({TargetOutcome.STARTED, TargetOutcome.JOINED, TargetOutcome.RESOLVED})


def written_by_plan_stage(results: list[TargetResult], message_id: str, key: str) -> bool:
    """Whether the plan stage must write the status: some target's outcome is in no run, or the alert
    did not come through the intake (which names the message by the alert's key, after writing its row)."""
    return message_id != key or any(r.outcome not in IN_THE_RUN for r in results)


def target_outcome(run: Run, key: str, condition: str, joined: bool) -> TargetOutcome | None:
    """What the alert with this key (`alert_key`) did to this run, read from the run; None: nothing."""
    if run.alert is not None and alert_key(run.alert) == key:
        return TargetOutcome.STARTED
    if key in run.alert_ids:
        return TargetOutcome.RESOLVED if condition == "Resolved" else TargetOutcome.JOINED
    return TargetOutcome.JOINED if joined else None


def derived(status: AlertStatus, results: list[TargetResult | None]) -> AlertStatus:
    """A queued status as planned once every target's outcome was found in the runs; as it is otherwise."""
    found = [r for r in results if r is not None]
    if status.state is not AlertState.QUEUED or not status.targets or len(found) != len(results):
        return status
    runs = tuple(dict.fromkeys(r.run_id for r in found if r.run_id))
    return AlertStatus(status.key, AlertState.PLANNED, status.alert_id, status.condition, status.received_at,
                       runs, "; ".join(_sentence(r) for r in found), status.targets, status.alert_key)


def planned(key: str, alert: Alert, results: list[TargetResult], now: dt.datetime) -> AlertStatus:
    """The status once every target was handled, with one sentence per target for people."""
    runs = tuple(dict.fromkeys(r.run_id for r in results if r.run_id))
    return AlertStatus(key, AlertState.PLANNED, alert.alert_id, alert.condition, now, runs,
                       "; ".join(_sentence(r) for r in results), queued(key, alert, now).targets, alert_key(alert))


def _sentence(result: TargetResult) -> str:
    on = f" on {result.target}" if result.target else " (the alert names no target)"
    if result.outcome is TargetOutcome.STARTED:
        return f"started run {result.run_id}{on}"
    if result.outcome is TargetOutcome.JOINED:
        return f"joined open run {result.run_id}{on}"
    if result.outcome is TargetOutcome.DUPLICATE:
        return f"a duplicate of an alert run {result.run_id} took already{on}; nothing changed"
    if result.outcome is TargetOutcome.RESOLVED:
        return f"resolution recorded on run {result.run_id}{on}"
    return f"resolved, but no run took its firing{on}: nothing to close"
