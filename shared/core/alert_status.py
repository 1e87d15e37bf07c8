"""What became of an accepted alert, kept under its key so the intake's status URL is one point read.

The intake writes `queued` when it accepts an alert; the plan stage writes `planned` with the run (or
runs) the alert started or joined, and says so when it led to none (a resolution with no open run, a
duplicate). A person reads it at GET /api/alerts/{key}; the intake reads it to answer a duplicate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from enum import StrEnum

from shared.core.model import Alert
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


def intake_key(alert: Alert) -> str:
    """The alert's key: one per (alert, condition, fired time). The alerts queue's message id (so the
    same alert posted twice is one message) and the key its status is kept under."""
    return hashlib.sha256(alert_key(alert).encode()).hexdigest()[:64]


def queued(key: str, alert: Alert, now: dt.datetime) -> AlertStatus:
    return AlertStatus(key, AlertState.QUEUED, alert.alert_id, alert.condition, now,
                       outcome="accepted; waiting for the plan stage")


def planned(key: str, alert: Alert, results: list[TargetResult], now: dt.datetime) -> AlertStatus:
    """The status once every target was handled, with one sentence per target for people."""
    runs = tuple(dict.fromkeys(r.run_id for r in results if r.run_id))
    return AlertStatus(key, AlertState.PLANNED, alert.alert_id, alert.condition, now, runs,
                       "; ".join(_sentence(r) for r in results))


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
