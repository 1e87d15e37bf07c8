"""Which run an alert belongs to: one open run per (alert rule, target resource), within a cooldown."""

from __future__ import annotations

import datetime as dt
import hashlib

from shared.core.model import Run, RunState


def correlation_key(rule_id: str, resource_id: str) -> str:
    return hashlib.sha256(f"{rule_id.lower()}|{resource_id.lower()}".encode()).hexdigest()[:48]


REPLAY_PREFIX = "replay-"


def replay_key(replay_id: str, rule_id: str, resource_id: str) -> str:
    """A replay's own correlation namespace: its runs never join, dedupe against or move a real alert's."""
    return f"{REPLAY_PREFIX}{replay_id}-{correlation_key(rule_id, resource_id)}"


def replay_of(key: str) -> str:
    """The replay a correlation key belongs to; "" for a real alert's."""
    if not key.startswith(REPLAY_PREFIX):
        return ""
    return key[len(REPLAY_PREFIX):].rsplit("-", 1)[0]


def joins_open_run(run: Run | None, opened_at: dt.datetime, now: dt.datetime, cooldown: dt.timedelta,
                   plan_version: int | None = None) -> bool:
    """A repeat joins its open run within the cooldown. A shadow run, though ended at once, stands for its
    incident the same way (a storm in shadow mode is one run per resource, as it would be for real), but
    only under the plan file that made it: after the file changes, the next firing is decided afresh."""
    if run is None or now - opened_at >= cooldown:
        return False
    if run.state is RunState.SHADOWED:
        return plan_version is not None and run.plan_version == plan_version
    return not run.state.is_terminal
