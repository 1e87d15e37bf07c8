"""One contract, two backends, for the kill switch and the paused-run index: the in-memory fakes the
gate tests use, and Table Storage on Azurite."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

from shared.adapters.table_store import TableRunStore, TableSwitchStore
from shared.core.errors import ConcurrencyConflict
from shared.core.model import Actor
from shared.core.pause import (
    LIFTED,
    SwitchChange,
    SwitchEntry,
    SwitchSource,
    change_switch,
    note_setting,
    setting_switch,
)
from tests.fakes import FakeRunStore, FakeSwitchStore

NOW = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
OLGA = Actor.person("0a6a0000-0000-4000-8000-000000000009", "olga@contoso.test")


@pytest.fixture(params=["fake", "azurite"])
def stores(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any]]:
    if request.param == "fake":
        yield FakeSwitchStore(), FakeRunStore()
        return
    connection = request.getfixturevalue("azurite_connection_string")
    name = request.getfixturevalue("table_name")
    service = TableServiceClient.from_connection_string(connection)
    switches = service.create_table(name + "s")
    runs, index = service.create_table(name), service.create_table(name + "i")
    yield TableSwitchStore(switches), TableRunStore(runs, index)
    for table in (name + "s", name, name + "i"):
        service.delete_table(table)


def thrown(store: Any, reason: str = "bad deploy", at: dt.datetime = NOW) -> Any:
    change = change_switch(LIFTED, store.get(), True, OLGA, reason, at)
    assert change is not None
    return store.put(change)


def test_a_switch_never_thrown_reads_lifted(stores: tuple[Any, Any]) -> None:
    switches, _ = stores
    assert switches.get() == LIFTED
    assert switches.history() == []


def test_a_thrown_switch_reads_back_with_who_when_and_why(stores: tuple[Any, Any]) -> None:
    switches, _ = stores
    written = thrown(switches)
    read = switches.get()
    assert (read.engaged, read.reason, read.by, read.at, read.source) == (True, "bad deploy", OLGA, NOW,
                                                                           SwitchSource.ADMIN)
    assert read.etag == written.etag is not None


def test_each_throw_and_lift_keeps_an_audit_line_newest_first(stores: tuple[Any, Any]) -> None:
    switches, _ = stores
    thrown(switches)
    lift = change_switch(LIFTED, switches.get(), False, OLGA, "rolled back", NOW + dt.timedelta(minutes=5))
    assert lift is not None
    switches.put(lift)
    assert switches.history() == [
        SwitchEntry("switch_lifted", NOW + dt.timedelta(minutes=5), OLGA, "rolled back", SwitchSource.ADMIN),
        SwitchEntry("switch_thrown", NOW, OLGA, "bad deploy", SwitchSource.ADMIN)]
    assert len(switches.history(limit=1)) == 1


def test_a_write_on_a_stale_read_is_a_conflict_and_writes_nothing(stores: tuple[Any, Any]) -> None:
    switches, _ = stores
    first = switches.get()
    thrown(switches)
    stale = change_switch(LIFTED, first, True, OLGA, "someone else", NOW)
    assert stale is not None
    with pytest.raises(ConcurrencyConflict):
        switches.put(stale)
    assert switches.get().reason == "bad deploy"
    assert len(switches.history()) == 1


def test_two_first_throws_at_once_one_wins(stores: tuple[Any, Any]) -> None:
    switches, _ = stores
    a = change_switch(LIFTED, LIFTED, True, OLGA, "a", NOW)
    b = change_switch(LIFTED, LIFTED, True, OLGA, "b", NOW)
    assert a is not None
    assert b is not None
    switches.put(a)
    with pytest.raises(ConcurrencyConflict):
        switches.put(b)  # both read "never thrown": insert-if-absent lets one through


def test_the_setting_seen_is_kept_without_an_audit_line_of_its_own_when_none_is_given(
        stores: tuple[Any, Any]) -> None:
    switches, _ = stores
    change = note_setting(switches.get(), setting_switch(True, "freeze", NOW), NOW)
    assert change is not None
    switches.put(change)
    assert switches.get().setting_seen == "on|freeze"
    switches.put(SwitchChange(replace(switches.get(), reason="x"), None))
    assert len(switches.history()) == 1


def test_paused_runs_are_indexed_until_dropped(stores: tuple[Any, Any]) -> None:
    _, runs = stores
    assert runs.paused_runs() == []
    runs.mark_paused("r1")
    runs.mark_paused("r2")
    runs.mark_paused("r1")  # idempotent
    assert sorted(runs.paused_runs()) == ["r1", "r2"]
    runs.drop_paused("r1")
    runs.drop_paused("r1")  # idempotent
    runs.drop_paused("never-paused")
    assert runs.paused_runs() == ["r2"]
