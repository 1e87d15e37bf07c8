"""TEMPORARY stand-in until the limits branch lands (same API)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from shared.core.limits import LimitClaim
from shared.services import Services


def reserve(services: Services, claims: Sequence[LimitClaim], now: dt.datetime) -> LimitClaim | None:
    return None
