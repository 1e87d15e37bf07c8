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
                   plan_version: int | None = None, shadowing: bool = False) -> bool:
    """A repeat joins its open run within the cooldown. A run that ended as it started stands for its
    incident the same way, under the plan file that decided it: a shadow run (a storm in shadow mode is one
    run per resource, as it would be for real), while shadow mode still holds for it (`shadowing`: turned
    off, the next firing is decided for real); a run the guardrails denied (one denial per incident, not
    one per firing). After the plan file changes, the next firing is decided afresh."""
    if run is None or now - opened_at >= cooldown:
        return False
    if stands_for_incident(run):
        return (plan_version is not None and run.plan_version == plan_version
                and (run.state is not RunState.SHADOWED or shadowing))
    return not run.state.is_terminal


def stands_for_incident(run: Run) -> bool:
    """A run that ended the moment it started, on the guardrails' word alone: shadowed, or denied by a rule."""
    return run.state is RunState.SHADOWED or (
        run.state is RunState.DENIED and (run.guardrails or {}).get("effect") == "deny")
