"""Taking a run's blast-radius places (`shared/core/limits.py`) before it may act on its own.

A run either takes every place its policy's limits ask or none: on the first that does not fit, the
places it took are given back and the limit it met is returned, for the run to fall back to consent
saying so. Taking places again is free of effect (the same run claims the same members), so a
redelivered alert reserves what its first delivery did and takes no new place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from shared.core.limits import LimitClaim
from shared.services import Services


def reserve(services: Services, claims: Sequence[LimitClaim], now: dt.datetime) -> LimitClaim | None:
    """Claim each in order; the first claim that did not fit (its places given back), or None when all fit."""

    def live(run_id: str) -> bool | None:
        # Asked only of a full in-flight counter. None: no such run, perhaps not written yet (its place is
        # claimed while its start is decided); the core keeps such a place a while before reclaiming it.
        run = services.runs.get_run(run_id)
        return None if run is None else not run.state.is_terminal

    taken: list[LimitClaim] = []
    try:
        for claim in claims:
            if not services.limits.claim(claim, now, live):
                services.limits.release(taken)
                return claim
            taken.append(claim)
    except Exception:
        # A claim lost its race too often (or storage failed): give back what was taken before the
        # delivery is retried, so a message that never gets through holds no place.
        services.limits.release(taken)
        raise
    return None
