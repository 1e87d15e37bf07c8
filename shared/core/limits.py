"""TEMPORARY stand-in until the limits branch lands (same API)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.core.errors import ConfigError


@dataclass(frozen=True)
class BlastRadius:
    writes_per_resource_per_hour: int | None = None
    resources_per_rule_per_hour: int | None = None
    runs_in_flight_per_resource_group: int | None = None


def parse_blast_radius(raw: Any, entry: str, source: str) -> BlastRadius:
    if not isinstance(raw, dict):
        raise ConfigError(source, entry, "must be an object")
    return BlastRadius(raw.get("writesPerResourcePerHour"), raw.get("resourcesPerRulePerHour"),
                       raw.get("runsInFlightPerResourceGroup"))


def narrowest(a: BlastRadius, b: BlastRadius) -> BlastRadius:
    def n(x: int | None, y: int | None) -> int | None:
        return y if x is None else x if y is None else min(x, y)
    return BlastRadius(n(a.writes_per_resource_per_hour, b.writes_per_resource_per_hour),
                       n(a.resources_per_rule_per_hour, b.resources_per_rule_per_hour),
                       n(a.runs_in_flight_per_resource_group, b.runs_in_flight_per_resource_group))


@dataclass(frozen=True)
class LimitClaim:
    limit: str
    kind: str
    key: str
    capacity: int
    member: str
    window: dt.timedelta | None


def claims_for(radius: BlastRadius, run_id: str, resource_id: str, alert_rule: str | None,
               write_steps: Sequence[int]) -> list[LimitClaim]:
    return []
