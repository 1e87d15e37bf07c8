"""Blast-radius counters: the fake the gate tests use and Table Storage on Azurite agree; on Azurite,
instances with clients of their own racing for one counter never take more places than it has."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.adapters.limit_store import ROW, TableLimitStore, _partition
from shared.core.errors import ConcurrencyConflict
from shared.core.limits import WINDOW, LimitClaim, LimitKind
from tests.fakes import FakeLimitStore

NOW = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
KEY = "writes|/subscriptions/s/resourcegroups/g/providers/microsoft.compute/virtualmachines/vm#1?x\\y"


def windowed(member: str, capacity: int = 2, key: str = KEY) -> LimitClaim:
    return LimitClaim("at most 2 writes per resource per hour", LimitKind.WRITES_PER_RESOURCE, key, capacity,
                      member, WINDOW)


def in_flight(member: str, capacity: int = 1) -> LimitClaim:
    return LimitClaim("at most 1 run in flight per resource group", LimitKind.RUNS_IN_FLIGHT_PER_RESOURCE_GROUP,
                      "rg|s/g", capacity, member, None)


@pytest.fixture(params=["fake", "azurite"])
def limits(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "fake":
        yield FakeLimitStore()
        return
    service = TableServiceClient.from_connection_string(request.getfixturevalue("azurite_connection_string"))
    name = request.getfixturevalue("table_name")
    yield TableLimitStore(service.create_table(name), pause=lambda attempt: None)
    service.delete_table(name)


@pytest.fixture
def table(azurite_connection_string: str, table_name: str) -> Iterator[Callable[[], TableClient]]:
    """A client of the test's table for each caller: each stands for a host instance of its own."""
    services: list[TableServiceClient] = []

    def client() -> TableClient:
        services.append(TableServiceClient.from_connection_string(azurite_connection_string))
        return services[-1].get_table_client(table_name)

    with TableServiceClient.from_connection_string(azurite_connection_string) as admin:
        admin.create_table(table_name)
        yield client
        admin.delete_table(table_name)
    for service in services:
        service.close()


# ------------------------------------------------------------------------------------------ contract


def test_a_claim_fits_an_empty_counter(limits) -> None:  # type: ignore[no-untyped-def]
    assert limits.claim(windowed("a"), NOW)


def test_claims_fit_until_the_counter_is_full(limits) -> None:  # type: ignore[no-untyped-def]
    assert [limits.claim(windowed(m), NOW) for m in "abc"] == [True, True, False]


def test_a_member_claiming_again_fits_a_full_counter(limits) -> None:  # type: ignore[no-untyped-def]
    limits.claim(windowed("a"), NOW)
    limits.claim(windowed("b"), NOW)
    assert limits.claim(windowed("a"), NOW + dt.timedelta(minutes=1))


def test_counters_are_separate(limits) -> None:  # type: ignore[no-untyped-def]
    limits.claim(windowed("a", capacity=1), NOW)
    assert limits.claim(windowed("a", capacity=1, key="writes|other"), NOW)


def test_places_come_free_after_the_window(limits) -> None:  # type: ignore[no-untyped-def]
    limits.claim(windowed("a", capacity=1), NOW)
    assert limits.claim(windowed("b", capacity=1), NOW + WINDOW)


def test_a_released_place_can_be_taken(limits) -> None:  # type: ignore[no-untyped-def]
    limits.claim(windowed("a", capacity=1), NOW)
    limits.release([windowed("a", capacity=1)])
    assert limits.claim(windowed("b", capacity=1), NOW)


def test_releasing_one_member_keeps_the_others(limits) -> None:  # type: ignore[no-untyped-def]
    limits.claim(windowed("a"), NOW)
    limits.claim(windowed("b"), NOW)
    limits.release([windowed("a")])
    assert [limits.claim(windowed(m), NOW) for m in ("c", "d")] == [True, False]


def test_releasing_what_was_never_claimed_changes_nothing(limits) -> None:  # type: ignore[no-untyped-def]
    limits.release([windowed("a"), in_flight("r1")])
    limits.claim(windowed("b", capacity=1), NOW)
    limits.release([windowed("a", capacity=1)])
    assert not limits.claim(windowed("c", capacity=1), NOW)


def test_releasing_twice_is_harmless(limits) -> None:  # type: ignore[no-untyped-def]
    limits.claim(windowed("a"), NOW)
    limits.release([windowed("a")])
    limits.release([windowed("a")])
    assert limits.claim(windowed("b"), NOW)


def test_a_full_in_flight_counter_asks_whether_its_runs_ended(limits) -> None:  # type: ignore[no-untyped-def]
    limits.claim(in_flight("r1"), NOW)
    assert not limits.claim(in_flight("r2"), NOW, lambda run_id: True)
    assert limits.claim(in_flight("r2"), NOW, lambda run_id: False)


def test_an_in_flight_counter_with_room_does_not_ask(limits) -> None:  # type: ignore[no-untyped-def]
    def live(run_id: str) -> bool:
        raise AssertionError("asked")
    assert limits.claim(in_flight("r1", capacity=2), NOW, live)


def test_claiming_again_does_not_extend_a_places_hour(limits) -> None:  # type: ignore[no-untyped-def]
    limits.claim(windowed("a"), NOW)
    assert limits.claim(windowed("a"), NOW + dt.timedelta(minutes=59))
    assert limits.claim(windowed("b"), NOW + WINDOW)
    assert limits.claim(windowed("c"), NOW + WINDOW)  # "a" expired at its first claim's hour


def test_many_long_members_fit_one_counter(limits) -> None:  # type: ignore[no-untyped-def]
    # 200 resource ids of 300 characters: more than one string property holds.
    members = [f"/subscriptions/s/resourcegroups/g/{i:04d}/" + "x" * 270 for i in range(200)]
    assert all(limits.claim(windowed(m, capacity=200), NOW) for m in members)
    assert not limits.claim(windowed("one-more", capacity=200), NOW)
    assert limits.claim(windowed(members[123], capacity=200), NOW)
    limits.release([windowed(m, capacity=200) for m in members[:100]])
    assert limits.claim(windowed("one-more", capacity=200), NOW)


# --------------------------------------------------------------------------------- Table Storage only


def test_the_counter_is_one_entity_keyed_by_a_hash_and_naming_its_key(table) -> None:  # type: ignore[no-untyped-def]
    client = table()
    TableLimitStore(client).claim(windowed("a"), NOW)
    (entity,) = list(client.list_entities())
    assert (entity["PartitionKey"], entity["RowKey"], entity["Key"]) == (_partition(KEY), ROW, KEY)


def test_the_last_release_removes_the_counter(table) -> None:  # type: ignore[no-untyped-def]
    client = table()
    store = TableLimitStore(client)
    store.claim(windowed("a"), NOW)
    store.release([windowed("a")])
    assert list(client.list_entities()) == []


class Meddling:
    """A table client whose counter someone else changes after every read: each conditional write loses."""

    def __init__(self, client: TableClient, other: TableClient) -> None:
        self._client = client
        self._other = other
        self.reads = 0

    def get_entity(self, partition_key: str, row_key: str) -> Any:
        entity = self._client.get_entity(partition_key, row_key)
        self.reads += 1
        self._other.upsert_entity({"PartitionKey": partition_key, "RowKey": row_key, "Touched": self.reads},
                                  mode=UpdateMode.MERGE)
        return entity

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_claim_that_keeps_losing_the_race_raises_after_bounded_attempts(table) -> None:  # type: ignore[no-untyped-def]
    client = table()
    TableLimitStore(client).claim(windowed("a", capacity=5), NOW)
    meddling = Meddling(client, table())
    store = TableLimitStore(meddling, attempts=4, pause=lambda attempt: None)  # type: ignore[arg-type]
    with pytest.raises(ConcurrencyConflict):
        store.claim(windowed("b", capacity=5), NOW)
    assert meddling.reads == 4


def test_a_release_that_keeps_losing_the_race_raises_after_bounded_attempts(table) -> None:  # type: ignore[no-untyped-def]
    client = table()
    TableLimitStore(client).claim(windowed("a", capacity=5), NOW)
    store = TableLimitStore(Meddling(client, table()), attempts=3, pause=lambda attempt: None)  # type: ignore[arg-type]
    with pytest.raises(ConcurrencyConflict):
        store.release([windowed("a", capacity=5)])


def race(table: Callable[[], TableClient], claims: list[LimitClaim], instances: int = 2) -> list[bool]:
    """Every claim at once, spread over `instances` stores each with a client of its own."""
    stores = [TableLimitStore(table()) for _ in range(instances)]
    start = threading.Barrier(len(claims))

    def claim(i: int) -> bool:
        start.wait()
        return stores[i % instances].claim(claims[i], NOW)

    with ThreadPoolExecutor(max_workers=len(claims)) as pool:
        return list(pool.map(claim, range(len(claims))))


def members_of(client: TableClient, key: str) -> set[str]:
    from shared.adapters.limit_store import _decode
    return set(_decode(client.get_entity(_partition(key), ROW)))


def test_forty_concurrent_claims_on_two_instances_take_exactly_the_five_places(table) -> None:  # type: ignore[no-untyped-def]
    claims = [windowed(f"run{i}:0", capacity=5) for i in range(40)]
    results = race(table, claims)
    winners = {c.member for c, fitted in zip(claims, results, strict=True) if fitted}
    assert len(winners) == 5
    assert members_of(table(), KEY) == winners


def test_concurrent_duplicate_claims_take_one_place_each(table) -> None:  # type: ignore[no-untyped-def]
    # Eight members each claimed five times at once (redeliveries on both instances): five members get in,
    # every claim of a member that got in fits, every claim of one that did not is refused.
    claims = [windowed(f"run{i % 8}:0", capacity=5) for i in range(40)]
    results = race(table, claims)
    by_member: dict[str, set[bool]] = {}
    for claim, fitted in zip(claims, results, strict=True):
        by_member.setdefault(claim.member, set()).add(fitted)
    assert all(len(answers) == 1 for answers in by_member.values())
    winners = {m for m, answers in by_member.items() if answers == {True}}
    assert len(winners) == 5
    assert members_of(table(), KEY) == winners
