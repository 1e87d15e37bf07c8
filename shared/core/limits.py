"""Blast-radius limits: how much a policy lets runs do before a person has to look (issue 10).

A policy may bound three things; each is a counter of members, kept in storage and claimed with
conditional writes so that runs on several instances share it:

    writes per resource per hour       member `<run>:<step>` per write step   counter `writes|<resource>`
    resources per alert rule per hour  member `<resource>`                    counter `rule|<rule>`
    runs in flight per resource group  member `<run>`                         counter `rg|<subscription>/<group>`

The first two are sliding windows of an hour: a member counts for an hour after it was claimed. The
third has no window: a member counts while its run is open, which only the run store knows, so `admit`
asks (through `live`) about its members only when the counter is full.

A member claimed twice takes one place, so a redelivered alert claims the same places again and takes
no new one. Reads are never limited: a run that writes nothing claims nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, NamedTuple

from shared.core.catalog import resource_group_of, subscription_of
from shared.core.errors import ConfigError

WINDOW = dt.timedelta(hours=1)
MAX_LIMIT = 500  # a counter's members ride in one entity; a bound also catches a typo of an extra zero
# A run's in-flight place is claimed while its start is decided, before the run is written. Another
# instance that finds no run behind a member keeps the place this long, then takes it as a run that was
# never written (its alert dead-lettered): far longer than a plan delivery's lock and redelivery.
UNWRITTEN_RUN_GRACE = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class BlastRadius:
    """A policy's limits; None: that limit is not set."""

    writes_per_resource_per_hour: int | None = None
    resources_per_rule_per_hour: int | None = None
    runs_in_flight_per_resource_group: int | None = None

    @property
    def is_unlimited(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


# The plan file's keys, in the order they are claimed.
_KEYS: dict[str, str] = {
    "writesPerResourcePerHour": "writes_per_resource_per_hour",
    "resourcesPerRulePerHour": "resources_per_rule_per_hour",
    "runsInFlightPerResourceGroup": "runs_in_flight_per_resource_group",
}


def parse_blast_radius(raw: Any, entry: str, source: str) -> BlastRadius:
    """`{"writesPerResourcePerHour": 3, "resourcesPerRulePerHour": 5, "runsInFlightPerResourceGroup": 2}`,
    any of them left out; None (the key absent from its policy) sets no limit. `ConfigError` names the key."""
    if raw is None:
        return BlastRadius()
    if not isinstance(raw, dict):
        raise ConfigError(source, entry, f"must be an object with any of {', '.join(_KEYS)}")
    values: dict[str, int] = {}
    for key, value in raw.items():
        if key not in _KEYS:
            raise ConfigError(source, f"{entry}.{key}", f"is not a blast-radius limit (known: {', '.join(_KEYS)})")
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_LIMIT:
            raise ConfigError(source, f"{entry}.{key}", f"must be a whole number from 1 to {MAX_LIMIT}")
        values[_KEYS[key]] = value
    return BlastRadius(**values)


def _smaller(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def narrowest(a: BlastRadius, b: BlastRadius) -> BlastRadius:
    """Each limit the smaller of the two; a limit set on one side only holds (an unset limit is no limit),
    so a narrower scope can add or tighten a limit but never widen a wider scope's."""
    return BlastRadius(**{f.name: _smaller(getattr(a, f.name), getattr(b, f.name)) for f in fields(BlastRadius)})


class LimitKind(StrEnum):
    WRITES_PER_RESOURCE = "writes-per-resource"
    RESOURCES_PER_RULE = "resources-per-rule"
    RUNS_IN_FLIGHT_PER_RESOURCE_GROUP = "runs-in-flight-per-resource-group"


@dataclass(frozen=True)
class LimitClaim:
    """One place asked of one counter."""

    limit: str  # for people: "at most 3 writes per resource per hour"
    kind: LimitKind
    key: str  # the counter
    capacity: int
    member: str  # what takes the place; the same member claiming twice takes one place
    window: dt.timedelta | None  # a sliding window, or None for an in-flight counter whose members are run ids


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def claims_for(radius: BlastRadius, run_id: str, resource_id: str, alert_rule: str | None,
               write_steps: Sequence[int]) -> list[LimitClaim]:
    """The places a run that writes at `write_steps` (indexes of its steps) on `resource_id` must take,
    in the order to take them. Nothing for a run that writes nothing; nothing per rule for an alert
    without a rule (or a run without an alert); nothing per resource group for a target outside one."""
    if not write_steps:
        return []
    claims: list[LimitClaim] = []
    resource = resource_id.lower()
    if (writes := radius.writes_per_resource_per_hour) is not None:
        limit = f"at most {_plural(writes, 'write', 'writes')} per resource per hour"
        claims += [LimitClaim(limit, LimitKind.WRITES_PER_RESOURCE, f"writes|{resource}", writes,
                              f"{run_id}:{index}", WINDOW) for index in write_steps]
    if (resources := radius.resources_per_rule_per_hour) is not None and alert_rule:
        limit = f"at most {_plural(resources, 'resource', 'resources')} per alert rule per hour"
        claims.append(LimitClaim(limit, LimitKind.RESOURCES_PER_RULE, f"rule|{alert_rule.lower()}", resources,
                                 resource, WINDOW))
    group = resource_group_of(resource_id)
    if (runs := radius.runs_in_flight_per_resource_group) is not None and group:
        limit = f"at most {_plural(runs, 'run', 'runs')} in flight per resource group"
        claims.append(LimitClaim(limit, LimitKind.RUNS_IN_FLIGHT_PER_RESOURCE_GROUP,
                                 f"rg|{subscription_of(resource_id)}/{group}", runs, run_id, None))
    return claims


# Whether a run is still open: True open, False ended, None no such run (not written yet, or never).
Liveness = Callable[[str], bool | None]


class Admission(NamedTuple):
    admitted: bool
    members: dict[str, dt.datetime]  # the counter's members to write back (when admitted and changed)


def admit(members: Mapping[str, dt.datetime], claim: LimitClaim, now: dt.datetime,
          live: Liveness | None = None) -> Admission:
    """Whether `claim` fits a counter holding `members` (member -> when it was claimed), and the members
    after it. A member already there fits and changes nothing. Otherwise members outside the window are
    dropped first; an in-flight counter that is full drops the members whose runs `live` says ended (or
    were never written, after `UNWRITTEN_RUN_GRACE`) — asked only then, as each answer costs a read.
    Without `live`, a full in-flight counter stays full. A refused claim's members are the pruned ones,
    for information: nothing needs writing."""
    current = dict(members)
    if claim.member in current and (claim.window is None or now - current[claim.member] < claim.window):
        return Admission(True, current)
    if claim.window is not None:
        window = claim.window
        current = {m: at for m, at in current.items() if now - at < window}
    elif len(current) >= claim.capacity and live is not None:
        current = {m: at for m, at in current.items() if _still_open(live(m), at, now)}
    if len(current) >= claim.capacity:
        return Admission(False, current)
    current[claim.member] = now
    return Admission(True, current)


def _still_open(answer: bool | None, claimed_at: dt.datetime, now: dt.datetime) -> bool:
    if answer is None:
        return now - claimed_at < UNWRITTEN_RUN_GRACE
    return answer


def without(members: Mapping[str, dt.datetime], released: Sequence[str]) -> dict[str, dt.datetime]:
    """The members left when `released` give their places back."""
    gone = set(released)
    return {m: at for m, at in members.items() if m not in gone}
