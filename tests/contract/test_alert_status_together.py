"""The intake's status rows of concurrent posts are added together (group commit), and each post still learns
whether its alert was new: the helper on its own, then the store on Azurite."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.data.tables import TableClient, TableServiceClient

from shared.adapters.group_commit import GroupCommit
from shared.adapters.table_store import TableAlertStatusStore
from shared.core.alert_status import AlertState, AlertStatus

NOW = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.UTC)
WAIT = 30.0  # seconds a condition is waited for before the test gives up


def _queued(key: str) -> AlertStatus:
    return AlertStatus(key, AlertState.QUEUED, f"alert-{key[:6]}", "Fired", NOW, outcome="accepted",
                       targets=(("/subscriptions/s/vm1", "c1"),), alert_key=f"alert-{key[:6]}|Fired|t")


def _key(index: int) -> str:
    return f"{index:064x}"


class _HeldWrites:
    """A flush that records what each write carried and holds the first one until released."""

    def __init__(self) -> None:
        self.writes: list[list[str]] = []
        self.first_on_the_wire = threading.Event()
        self.release = threading.Event()

    def flush(self, items: list[str]) -> list[str | BaseException]:
        self.writes.append(items)
        if len(self.writes) == 1:
            self.first_on_the_wire.set()
            assert self.release.wait(WAIT)
        return [ValueError(item) if item.startswith("bad") else item.upper() for item in items]


def _waiting(commit: GroupCommit[str, str], count: int) -> None:
    pause = threading.Event()  # never set: a sleep the test's own threads do not share
    for _ in range(int(WAIT * 100)):
        if len(commit._waiting) == count:  # the callers are queued behind the write on the wire
            return
        pause.wait(0.01)
    raise AssertionError(f"{count} callers never queued")


def test_a_lone_caller_writes_at_once_and_gets_its_outcome() -> None:
    held = _HeldWrites()
    held.release.set()
    assert GroupCommit(held.flush).submit("a") == "A"
    assert held.writes == [["a"]]


def test_callers_arriving_while_a_write_is_on_the_wire_go_out_together_in_the_next() -> None:
    held = _HeldWrites()
    commit: GroupCommit[str, str] = GroupCommit(held.flush)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(commit.submit, "a")
        assert held.first_on_the_wire.wait(WAIT)
        others = {item: pool.submit(commit.submit, item) for item in ("b", "c", "d")}
        _waiting(commit, 3)
        held.release.set()
        assert first.result(WAIT) == "A"
        assert {item: future.result(WAIT) for item, future in others.items()} == {"b": "B", "c": "C", "d": "D"}
    assert held.writes[0] == ["a"]
    assert sorted(held.writes[1]) == ["b", "c", "d"]
    assert len(held.writes) == 2


def test_an_item_that_fails_on_its_own_fails_only_its_caller() -> None:
    held = _HeldWrites()
    commit: GroupCommit[str, str] = GroupCommit(held.flush)
    with ThreadPoolExecutor(3) as pool:
        pool.submit(commit.submit, "a")
        assert held.first_on_the_wire.wait(WAIT)
        bad, good = pool.submit(commit.submit, "bad"), pool.submit(commit.submit, "good")
        _waiting(commit, 2)
        held.release.set()
        with pytest.raises(ValueError, match="bad"):
            bad.result(WAIT)
        assert good.result(WAIT) == "GOOD"


def test_a_write_that_raises_fails_each_of_its_callers_and_the_next_write_goes_on() -> None:
    calls: list[list[str]] = []

    def flush(items: list[str]) -> list[str | BaseException]:
        calls.append(items)
        if len(calls) == 1:
            raise ConnectionError("the link broke")
        return items

    commit: GroupCommit[str, str] = GroupCommit(flush)
    with pytest.raises(ConnectionError):
        commit.submit("a")
    assert commit.submit("b") == "b"


@pytest.fixture
def table(azurite_connection_string: str, table_name: str) -> Iterator[TableClient]:
    service = TableServiceClient.from_connection_string(azurite_connection_string)
    yield service.create_table(table_name)
    service.delete_table(table_name)


def test_concurrent_posts_of_different_alerts_each_add_their_row(table: TableClient) -> None:
    store = TableAlertStatusStore(table)
    with ThreadPoolExecutor(16) as pool:
        added = list(pool.map(lambda i: store.add(_queued(_key(i))), range(200)))
    assert added == [True] * 200
    assert all(store.get(_key(i)) == _queued(_key(i)) for i in range(200))


def test_concurrent_posts_of_one_alert_add_it_once(table: TableClient) -> None:
    store = TableAlertStatusStore(table)
    with ThreadPoolExecutor(16) as pool:
        added = list(pool.map(lambda _: store.add(_queued(_key(7))), range(48)))
    assert added.count(True) == 1


def test_in_a_group_with_an_alert_added_before_the_others_are_added_and_it_is_not(table: TableClient) -> None:
    store = TableAlertStatusStore(table)
    store.add(_queued(_key(2)))
    rows = [store._entity(_queued(_key(i))) for i in (1, 2, 3)]
    assert store._add_together(rows) == [True, False, True]
    assert store.get(_key(1)) == _queued(_key(1))
    assert store.get(_key(3)) == _queued(_key(3))


def test_the_same_alert_twice_in_one_group_is_added_once(table: TableClient) -> None:
    store = TableAlertStatusStore(table)
    rows = [store._entity(_queued(_key(i))) for i in (1, 5, 1)]
    assert store._add_together(rows) == [True, True, False]


def test_a_group_larger_than_one_transaction_takes_is_added_whole(table: TableClient) -> None:
    store = TableAlertStatusStore(table)
    rows = [store._entity(_queued(_key(i))) for i in range(250)]
    assert store._add_together(rows) == [True] * 250
    assert store.get(_key(249)) == _queued(_key(249))


def test_a_row_kept_in_the_earlier_layout_is_still_read(table: TableClient) -> None:
    # Before, each alert's row was a partition of its own: rows added then still answer their status URL.
    store = TableAlertStatusStore(table)
    entity = store._entity(_queued(_key(9)))
    table.create_entity({**entity, "PartitionKey": _key(9), "RowKey": TableAlertStatusStore.LEGACY_ROW})
    assert store.get(_key(9)) == _queued(_key(9))


def test_statuses_put_by_concurrent_callers_for_alerts_without_a_row_are_each_kept(table: TableClient) -> None:
    # The plan stage's rows for alerts that came by the queue: new rows, added as the intake's are.
    store = TableAlertStatusStore(table)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.put(_queued(_key(i))), range(40)))
    assert all(store.get(_key(i)) == _queued(_key(i)) for i in range(40))


def test_a_status_put_over_the_intake_row_replaces_it(table: TableClient) -> None:
    store = TableAlertStatusStore(table)
    store.add(_queued(_key(1)))
    planned = AlertStatus(_key(1), AlertState.PLANNED, "alert-1", "Fired", NOW, ("r1",), "no plan matched")
    store.put(planned)
    assert store.get(_key(1)) == planned
