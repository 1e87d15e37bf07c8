"""Reserving a run's blast-radius places: all or none, the limit met named, idempotent, and a run's
liveness read only when an in-flight counter is full."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from gates.limits import reserve
from shared.core.change import Change
from shared.core.errors import ConcurrencyConflict
from shared.core.limits import UNWRITTEN_RUN_GRACE, WINDOW, BlastRadius, LimitClaim, Liveness, claims_for
from shared.core.model import RunState
from tests.fakes import FakeLimitStore
from tests.pipeline import VM, Pipeline, alert, plan_book

NOW = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
RADIUS = BlastRadius(writes_per_resource_per_hour=2, resources_per_rule_per_hour=5,
                     runs_in_flight_per_resource_group=1)
RG_KEY = f"rg|{VM.lower().split('/')[2]}/rg-prod-web"


@pytest.fixture
def p() -> Pipeline:
    return Pipeline(plan_book("review", ["vm.restart"]))


def claims(run_id: str, steps: list[int], radius: BlastRadius = RADIUS) -> list[LimitClaim]:
    return claims_for(radius, run_id, VM, "vm-not-responding", steps)


def store_run(p: Pipeline, run_id: str, state: RunState) -> None:
    """A run in the store in `state`, shaped as a real one: the review run an alert starts."""
    p.send_alert(alert(alert_id=run_id), message_id=run_id)
    p.drain()
    template = next(r for r in p.store.all_runs() if r.run_id not in {"open", "ended"})
    p.store.create_run(Change(replace(template, run_id=run_id, state=state, etag=None)))


def test_all_places_fit_and_are_taken(p: Pipeline) -> None:
    assert reserve(p.services, claims("run1", [0, 1]), NOW) is None
    assert p.limits.members(f"writes|{VM.lower()}") == {"run1:0", "run1:1"}
    assert p.limits.members("rule|vm-not-responding") == {VM.lower()}
    assert p.limits.members(RG_KEY) == {"run1"}


def test_no_claims_fit_trivially(p: Pipeline) -> None:
    assert reserve(p.services, [], NOW) is None
    assert p.limits.counters == {}


def test_the_first_limit_met_is_returned(p: Pipeline) -> None:
    reserve(p.services, claims("run1", [0, 1]), NOW)
    met = reserve(p.services, claims("run2", [0]), NOW)
    assert met is not None
    assert met.limit == "at most 2 writes per resource per hour"


def test_a_run_that_meets_a_limit_gives_back_the_places_it_took(p: Pipeline) -> None:
    reserve(p.services, claims("run1", [0]), NOW)  # holds the resource group's only in-flight place
    met = reserve(p.services, claims("run2", [0]), NOW + dt.timedelta(minutes=1))
    assert met is not None
    assert met.key == RG_KEY
    assert p.limits.members(f"writes|{VM.lower()}") == {"run1:0"}
    assert p.limits.members(RG_KEY) == {"run1"}


def test_a_second_reservation_of_the_same_run_takes_no_new_place(p: Pipeline) -> None:
    reserve(p.services, claims("run1", [0, 1]), NOW)
    writes = p.limits.writes
    assert reserve(p.services, claims("run1", [0, 1]), NOW + dt.timedelta(minutes=5)) is None
    assert p.limits.writes == writes


def test_places_come_free_after_the_window(p: Pipeline) -> None:
    radius = BlastRadius(writes_per_resource_per_hour=1)
    reserve(p.services, claims("run1", [0], radius), NOW)
    assert reserve(p.services, claims("run2", [0], radius), NOW + WINDOW) is None


def test_an_in_flight_place_held_by_an_open_run_is_not_taken(p: Pipeline) -> None:
    store_run(p, "run1", RunState.AWAITING_CONSENT)
    radius = BlastRadius(runs_in_flight_per_resource_group=1)
    reserve(p.services, claims("run1", [0], radius), NOW)
    assert reserve(p.services, claims("run2", [0], radius), NOW + 2 * UNWRITTEN_RUN_GRACE) is not None


def test_an_in_flight_place_held_by_an_ended_run_is_taken(p: Pipeline) -> None:
    store_run(p, "run1", RunState.SUCCEEDED)
    radius = BlastRadius(runs_in_flight_per_resource_group=1)
    reserve(p.services, claims("run1", [0], radius), NOW)
    assert reserve(p.services, claims("run2", [0], radius), NOW + dt.timedelta(seconds=1)) is None
    assert p.limits.members(RG_KEY) == {"run2"}


def test_an_in_flight_place_of_a_run_not_yet_written_is_kept(p: Pipeline) -> None:
    radius = BlastRadius(runs_in_flight_per_resource_group=1)
    reserve(p.services, claims("deciding", [0], radius), NOW)
    assert reserve(p.services, claims("run2", [0], radius), NOW + dt.timedelta(seconds=1)) is not None


def test_an_in_flight_place_of_a_run_never_written_is_taken_after_the_grace(p: Pipeline) -> None:
    radius = BlastRadius(runs_in_flight_per_resource_group=1)
    reserve(p.services, claims("lost", [0], radius), NOW)
    assert reserve(p.services, claims("run2", [0], radius), NOW + UNWRITTEN_RUN_GRACE) is None


def test_runs_are_read_only_when_an_in_flight_counter_is_full(p: Pipeline) -> None:
    reads: list[str] = []
    get_run = p.store.get_run
    p.store.get_run = lambda run_id: reads.append(run_id) or get_run(run_id)  # type: ignore[method-assign]
    radius = BlastRadius(runs_in_flight_per_resource_group=2)
    reserve(p.services, claims("run1", [0], radius), NOW)
    reserve(p.services, claims("run2", [0], radius), NOW)
    assert reads == []
    reserve(p.services, claims("run3", [0], radius), NOW)
    assert sorted(reads) == ["run1", "run2"]


class FailingSecondClaim(FakeLimitStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def claim(self, claim: LimitClaim, now: dt.datetime, live: Liveness | None = None) -> bool:
        self.calls += 1
        if self.calls == 2:
            raise ConcurrencyConflict(claim.key)
        return super().claim(claim, now, live)


def test_a_claim_that_fails_gives_back_the_places_taken_before_it_and_raises(p: Pipeline) -> None:
    p.services.limits = store = FailingSecondClaim()
    with pytest.raises(ConcurrencyConflict):
        reserve(p.services, claims("run1", [0, 1]), NOW)
    assert store.counters == {}
