"""An accepted alert's status as it stands: the row under its key, and, while that row says queued,
what the runs it names record (the plan stage writes no status where a run holds the outcome)."""

from __future__ import annotations

import datetime as dt

from shared.core.alert_status import AlertStatus, TargetResult, derived, target_outcome
from shared.services import Services

# A run opened this long before the alert was received cannot have been opened for it or taken it later
# than the run after it; the slack covers clocks of different hosts.
SLACK = dt.timedelta(minutes=5)


def current_status(services: Services, key: str) -> AlertStatus | None:
    """One point read when the row holds the outcome; while it says queued, per target the correlation
    and the runs it named (newest first, back to the one open when the alert came), a read or two each."""
    status = services.alert_status.get(key)
    if status is None or not status.alert_key:
        return status
    return derived(status, [_outcome(services, status, target, correlation_key)
                            for target, correlation_key in status.targets])


def _outcome(services: Services, status: AlertStatus, target: str, correlation_key: str) -> TargetResult | None:
    correlation = services.correlations.get_fresh(correlation_key)
    if correlation is None:
        return None
    for run_id in (correlation.run_id, *correlation.earlier):
        run = services.runs.get_run(run_id)
        if run is None:
            continue  # the correlation was written and its run not yet (or never): not this alert's
        outcome = target_outcome(run, status.alert_key, status.condition, False)
        if outcome is None and services.runs.join_recorded(run_id, status.alert_key):
            outcome = target_outcome(run, status.alert_key, status.condition, True)
        if outcome is not None:
            return TargetResult(target, outcome, run_id)
        if run.created_at < status.received_at - SLACK:
            return None  # open before the alert came: older runs cannot have taken it
    return None
