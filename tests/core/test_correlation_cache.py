"""The correlation memory saves reads in a storm and is never trusted past a change of its own making."""

from __future__ import annotations

import datetime as dt

from shared.adapters.correlation_cache import RememberedCorrelations
from tests.fakes import FakeClock, FakeCorrelationStore

NOW = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)


class CountingStore(FakeCorrelationStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get(self, key: str):  # type: ignore[no-untyped-def]
        self.gets += 1
        return super().get(key)


def test_a_correlation_read_once_is_remembered_for_a_while() -> None:
    store, clock = CountingStore(), FakeClock(NOW)
    remembered = RememberedCorrelations(store, clock)
    store.create("k", "r1", NOW)
    assert remembered.get("k").run_id == remembered.get("k").run_id == "r1"
    assert store.gets == 1


def test_a_remembered_correlation_is_read_again_once_it_is_old() -> None:
    store, clock = CountingStore(), FakeClock(NOW)
    remembered = RememberedCorrelations(store, clock, ttl=dt.timedelta(seconds=60))
    store.create("k", "r1", NOW)
    remembered.get("k")
    clock.advance(dt.timedelta(seconds=61))
    remembered.get("k")
    assert store.gets == 2


def test_a_missing_correlation_is_never_remembered() -> None:
    store, clock = CountingStore(), FakeClock(NOW)
    remembered = RememberedCorrelations(store, clock)
    assert remembered.get("k") is None
    store.create("k", "r1", NOW)
    assert remembered.get("k").run_id == "r1"


def test_replacing_through_the_memory_remembers_the_new_run_without_reading() -> None:
    store, clock = CountingStore(), FakeClock(NOW)
    remembered = RememberedCorrelations(store, clock)
    store.create("k", "r1", NOW)
    current = remembered.get("k")
    assert remembered.replace(current, "r2", NOW) is not None
    assert remembered.get("k").run_id == "r2"
    assert store.gets == 1


def test_a_stale_memory_cannot_replace_what_another_instance_replaced() -> None:
    store, clock = CountingStore(), FakeClock(NOW)
    remembered = RememberedCorrelations(store, clock)
    store.create("k", "r1", NOW)
    stale = remembered.get("k")
    store.replace(store.get("k"), "r2", NOW)  # another instance opened a new run
    assert remembered.get("k") == stale  # still remembered...
    assert remembered.replace(stale, "r3", NOW) is None  # ...but it cannot win on a stale ETag
    assert remembered.get("k").run_id == "r2"


def test_the_memory_holds_at_most_its_capacity() -> None:
    store, clock = CountingStore(), FakeClock(NOW)
    remembered = RememberedCorrelations(store, clock, capacity=2)
    for key in ("a", "b", "c"):
        store.create(key, f"r-{key}", NOW)
        remembered.get(key)
    store.gets = 0
    remembered.get("a")
    assert store.gets == 1


def test_a_correlation_this_process_created_is_remembered_with_its_etag_and_replaced_unread() -> None:
    store, clock = CountingStore(), FakeClock(NOW)
    remembered = RememberedCorrelations(store, clock)
    assert remembered.create("k", "r1", NOW) is not None
    created = remembered.get("k")
    assert created.run_id == "r1"
    assert remembered.replace(created, "r2", NOW) is not None
    assert remembered.replace(remembered.get("k"), "r3", NOW) is not None
    assert store.gets == 0
    assert store.get("k").earlier == ("r2", "r1")


def test_a_correlation_this_process_wrote_cannot_be_replaced_after_another_instance_replaced_it() -> None:
    store, clock = CountingStore(), FakeClock(NOW)
    remembered = RememberedCorrelations(store, clock)
    written = remembered.create("k", "r1", NOW)
    store.replace(store.get("k"), "r2", NOW)  # another instance opened a new run
    assert remembered.replace(written, "r3", NOW) is None
    assert remembered.get("k").run_id == "r2"


def test_a_known_correlation_is_only_what_is_remembered_and_takes_no_read() -> None:
    store, clock = CountingStore(), FakeClock(NOW)
    remembered = RememberedCorrelations(store, clock, ttl=dt.timedelta(seconds=60))
    store.create("k", "r1", NOW)
    assert remembered.get_known("k") is None  # there, but not remembered: finding it would take a read
    remembered.get("k")
    known = remembered.get_known("k")
    assert known is not None
    assert known.run_id == "r1"
    clock.advance(dt.timedelta(seconds=61))
    assert remembered.get_known("k") is None  # too old to be trusted without a read
    assert store.gets == 1
