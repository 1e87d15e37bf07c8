"""Which run an alert belongs to: one open run per (alert rule, target resource), within a cooldown."""

from __future__ import annotations

import datetime as dt
import hashlib

from shared.core.model import Run


def correlation_key(rule_id: str, resource_id: str) -> str:
    return hashlib.sha256(f"{rule_id.lower()}|{resource_id.lower()}".encode()).hexdigest()[:48]


def joins_open_run(run: Run | None, opened_at: dt.datetime, now: dt.datetime, cooldown: dt.timedelta) -> bool:
    return run is not None and not run.state.is_terminal and now - opened_at < cooldown
