"""The run index's layout on Table Storage (Azurite): ended runs in a partition per day, so no
partition grows with history; a page is one range query, which follows the service's own continuations
when it ends a page early; and what the one-partition layout before it left is moved to its day."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from azure.data.tables import TableClient, TableServiceClient

from benchmarks import wire
from local_azure.azurite import AzuriteTables
from shared.adapters.table_store import INDEX_PARTITION, TableRunStore, _newest_first, _summary_entity, ended_keys
from shared.core.model import Run, RunState
from tests.contract.test_run_store_contract import new_run

pytestmark = pytest.mark.azurite

NOON = dt.datetime(2026, 11, 24, 12, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@dataclasses.dataclass
class Index:
    store: TableRunStore
    table: TableClient
    counter: wire.TableWire
    template: Run

    def end(self, run_id: str, at: dt.datetime, state: RunState = RunState.SUCCEEDED) -> None:
        self.store.mark_ended(dataclasses.replace(self.template, run_id=run_id, state=state, updated_at=at))

    def queries_for(self, call: Any) -> int:
        mark = self.counter.mark()
        call()
        return sum(1 for request in self.counter.since(mark) if request.kind == wire.QUERY)


class ShortPages:
    """The index table as the service may answer it: a page cut short (here at `most` entities), with a
    continuation for the rest, as at a partition boundary or after its five seconds of work."""

    def __init__(self, table: TableClient, most: int) -> None:
        self._table, self._most = table, most

    def query_entities(self, query: str, **options: Any) -> Any:
        return self._table.query_entities(query, **{**options, "results_per_page": self._most})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


@pytest.fixture
def index(azurite: AzuriteTables, table_prefix: str) -> Iterator[Index]:
    with wire.TableWire(azurite.port) as counter:
        service = TableServiceClient.from_connection_string(counter.connection_string)
        runs, table = service.create_table(table_prefix), service.create_table(table_prefix + "i")
        store = TableRunStore(runs, table)
        store.create_run(new_run("template"))
        template = store.get_run("template")
        assert template is not None
        store.drop_open("template")  # only the runs a test ends are listed
        yield Index(store, table, counter, template)
        for name in (table_prefix, table_prefix + "i"):
            service.delete_table(name)


def test_each_ended_partition_holds_the_runs_of_one_day_every_state_and_all(index: Index) -> None:
    for n in range(6):
        index.end(f"r{n}", NOON - (n // 2) * DAY + dt.timedelta(hours=n % 2 * 11),
                  RunState.FAILED if n == 5 else RunState.SUCCEEDED)
    days: dict[str, set[dt.date]] = {}
    rows: dict[str, set[str]] = {}
    for entity in index.table.list_entities():
        if entity["PartitionKey"] != INDEX_PARTITION:
            days.setdefault(entity["PartitionKey"], set()).add(entity["UpdatedAt"].date())
            rows.setdefault(entity["RowKey"].split("|")[0], set()).add(entity["RunId"])
    assert len(days) == 3
    assert all(len(held) == 1 for held in days.values())
    assert rows == {"*": {f"r{n}" for n in range(6)}, "succeeded": {f"r{n}" for n in range(5)}, "failed": {"r5"}}


def test_a_run_that_ends_is_indexed_in_one_batch_and_leaves_the_open_entries_in_one_delete(index: Index) -> None:
    index.store.create_run(new_run("ending"))
    mark = index.counter.mark()
    index.end("ending", NOON)
    assert [r.kind for r in index.counter.since(mark)] == [wire.BATCH, wire.DELETE]


def test_a_rare_state_is_listed_across_days_without_the_others(index: Index) -> None:
    for n in range(9):
        index.end(f"r{n}", NOON - n * DAY, RunState.FAILED if n % 4 == 0 else RunState.SUCCEEDED)
    first = index.store.list_runs(RunState.FAILED, limit=2)
    assert [r.run_id for r in first.runs] == ["r0", "r4"]
    rest = index.store.list_runs(RunState.FAILED, limit=2, continuation=first.continuation)
    assert [r.run_id for r in rest.runs] == ["r8"]
    assert rest.continuation is None


def test_a_page_of_100_that_spans_days_is_one_query(index: Index) -> None:
    for n in range(150):  # 50 a day over three days
        index.end(f"r{n:03d}", NOON - n * dt.timedelta(minutes=28.8))
    first = index.store.list_runs(RunState.SUCCEEDED, limit=100)
    assert index.queries_for(lambda: index.store.list_runs(RunState.SUCCEEDED, limit=100)) == 1
    assert index.queries_for(
        lambda: index.store.list_runs(RunState.SUCCEEDED, limit=100, continuation=first.continuation)) == 1


def test_a_page_the_service_cuts_short_is_filled_from_its_continuation(index: Index) -> None:
    for n in range(7):
        index.end(f"r{n}", NOON - n * DAY)
    store = TableRunStore(index.store._table, ShortPages(index.table, 2))  # type: ignore[arg-type]
    mark = index.counter.mark()
    first = store.list_runs(RunState.SUCCEEDED, limit=5)
    assert [r.run_id for r in first.runs] == ["r0", "r1", "r2", "r3", "r4"]
    assert [r.kind for r in index.counter.since(mark)] == [wire.QUERY] * 3  # 2 + 2 + the 6th, to know more follow
    assert [r.run_id for r in store.list_runs(RunState.SUCCEEDED, limit=5, continuation=first.continuation).runs] \
        == ["r5", "r6"]


def test_the_period_read_is_filled_from_the_services_continuation_too(index: Index) -> None:
    for n in range(5):
        index.end(f"r{n}", NOON - n * DAY)
    store = TableRunStore(index.store._table, ShortPages(index.table, 1))  # type: ignore[arg-type]
    page = store.ended_between(RunState.SUCCEEDED, NOON - 3 * DAY, NOON + dt.timedelta(seconds=1), limit=3)
    assert [r.run_id for r in page.runs] == ["r0", "r1", "r2"]
    assert [r.run_id for r in store.ended_between(RunState.SUCCEEDED, NOON - 3 * DAY, NOON + dt.timedelta(seconds=1),
                                                  limit=3, continuation=page.continuation).runs] == ["r3"]


def undated(index: Index, run_id: str, at: dt.datetime, state: RunState = RunState.SUCCEEDED) -> None:
    """An ended run as the index kept it before it had a partition per day."""
    run = dataclasses.replace(index.template, run_id=run_id, state=state, updated_at=at)
    for label in (state.value, "*"):
        index.table.upsert_entity(_summary_entity((INDEX_PARTITION, f"ended|{label}|{_newest_first(at)}|{run_id}"),
                                                  run))


def test_entries_of_the_one_partition_layout_are_moved_to_their_day_a_share_at_a_time(index: Index) -> None:
    undated(index, "old0", NOON - 2 * DAY)
    undated(index, "old1", NOON - 3 * DAY, RunState.FAILED)
    index.end("new", NOON)
    assert [r.run_id for r in index.store.list_runs(None).runs] == ["new"]
    assert index.store.move_undated_ended(most=3) == 3
    assert index.store.move_undated_ended(most=3) == 1
    assert index.store.move_undated_ended(most=3) == 0
    assert [r.run_id for r in index.store.list_runs(None).runs] == ["new", "old0", "old1"]
    assert [r.run_id for r in index.store.list_runs(RunState.FAILED).runs] == ["old1"]
    [moved] = index.store.list_runs(RunState.FAILED).runs
    assert (moved.state, moved.plan_name, moved.updated_at) == (RunState.FAILED, index.template.plan_name,
                                                                NOON - 3 * DAY)


def test_a_move_cut_short_after_its_writes_is_finished_by_the_next_once(index: Index) -> None:
    undated(index, "old", NOON - DAY)
    index.end("old", NOON - DAY)  # what the move writes, as if its host died before it deleted
    assert index.store.move_undated_ended() == 2
    assert [r.run_id for r in index.store.list_runs(None).runs] == ["old"]
    assert index.store.move_undated_ended() == 0


def test_with_nothing_left_to_move_the_move_is_one_query(index: Index) -> None:
    index.end("new", NOON)
    assert index.queries_for(index.store.move_undated_ended) == 1


def test_an_entry_written_before_it_said_when_the_run_ended_reads_as_ended_at_its_last_change(index: Index) -> None:
    run = dataclasses.replace(index.template, run_id="old", state=RunState.SUCCEEDED, updated_at=NOON)
    entity = _summary_entity(ended_keys(RunState.SUCCEEDED.value, NOON, "old"), run)
    del entity["EndedAt"]
    index.table.upsert_entity(entity)
    [listed] = index.store.list_runs(RunState.SUCCEEDED).runs
    assert listed.ended_at == NOON
