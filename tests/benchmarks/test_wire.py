"""The wire counter (benchmarks/wire.py) names each request the real SDK sends to Azurite as the Table
service's REST API defines it, and passes every answer back unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

from benchmarks import wire
from local_azure.azurite import AzuriteTables

pytestmark = pytest.mark.azurite


@pytest.fixture
def counted(azurite: AzuriteTables, table_prefix: str) -> Iterator[tuple[wire.TableWire, TableClient]]:
    with wire.TableWire(azurite.port) as counter:
        service = TableServiceClient.from_connection_string(counter.connection_string)
        yield counter, service.create_table(table_prefix)


def kinds(counter: wire.TableWire, mark: int) -> list[str]:
    return [request.kind for request in counter.since(mark)]


def test_creating_a_table_is_counted_as_create_table(azurite: AzuriteTables, table_prefix: str) -> None:
    with wire.TableWire(azurite.port) as counter:
        TableServiceClient.from_connection_string(counter.connection_string).create_table_if_not_exists(table_prefix)
        assert kinds(counter, 0) == [wire.CREATE_TABLE]


def test_a_point_read_names_its_table_and_keys(counted: tuple[wire.TableWire, TableClient]) -> None:
    counter, table = counted
    table.create_entity({"PartitionKey": "run-1", "RowKey": "run"})
    mark = counter.mark()
    table.get_entity("run-1", "run")
    [read] = counter.since(mark)
    assert (read.kind, read.table, read.partition, read.row, read.status) == (
        wire.POINT_READ, table.table_name, "run-1", "run", 200)


def test_single_writes_are_told_apart_by_verb_and_etag(counted: tuple[wire.TableWire, TableClient]) -> None:
    counter, table = counted
    mark = counter.mark()
    table.create_entity({"PartitionKey": "p", "RowKey": "r", "n": 1})
    etag = table.get_entity("p", "r").metadata["etag"]
    table.update_entity({"PartitionKey": "p", "RowKey": "r", "n": 2}, mode=UpdateMode.REPLACE, etag=etag,
                        match_condition=MatchConditions.IfNotModified)
    table.upsert_entity({"PartitionKey": "p", "RowKey": "s"}, mode=UpdateMode.REPLACE)
    table.upsert_entity({"PartitionKey": "p", "RowKey": "s"}, mode=UpdateMode.MERGE)
    table.delete_entity("p", "s")
    assert kinds(counter, mark) == [wire.INSERT, wire.POINT_READ, wire.UPDATE, wire.UPSERT, wire.UPSERT_MERGE,
                                    wire.DELETE]


def test_a_refused_insert_is_counted_with_its_status(counted: tuple[wire.TableWire, TableClient]) -> None:
    counter, table = counted
    table.create_entity({"PartitionKey": "p", "RowKey": "r"})
    mark = counter.mark()
    with pytest.raises(ResourceExistsError):
        table.create_entity({"PartitionKey": "p", "RowKey": "r"})
    [insert] = counter.since(mark)
    assert (insert.kind, insert.status, insert.partition, insert.row) == (wire.INSERT, 409, "p", "r")


def test_a_batch_lists_its_operations_and_is_a_commit_when_it_writes(
        counted: tuple[wire.TableWire, TableClient]) -> None:
    counter, table = counted
    table.create_entity({"PartitionKey": "run-1", "RowKey": "run"})
    etag = table.get_entity("run-1", "run").metadata["etag"]
    mark = counter.mark()
    table.submit_transaction([
        ("update", {"PartitionKey": "run-1", "RowKey": "run", "State": "running"},
         {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}),
        ("create", {"PartitionKey": "run-1", "RowKey": "audit-000001"}),
        ("upsert", {"PartitionKey": "run-1", "RowKey": "outbox-m1"}),
    ])
    table.submit_transaction([("delete", {"PartitionKey": "run-1", "RowKey": "outbox-m1"})])
    commit, clearing = counter.since(mark)
    assert [(op.kind, op.row) for op in commit.operations] == [
        (wire.UPDATE, "run"), (wire.INSERT, "audit-000001"), (wire.UPSERT_MERGE, "outbox-m1")]
    assert commit.is_commit
    assert [op.kind for op in clearing.operations] == [wire.DELETE]
    assert not clearing.is_commit


def test_a_batch_refused_on_its_etag_is_no_commit(counted: tuple[wire.TableWire, TableClient]) -> None:
    counter, table = counted
    table.create_entity({"PartitionKey": "run-1", "RowKey": "run"})
    stale = table.get_entity("run-1", "run").metadata["etag"]
    table.upsert_entity({"PartitionKey": "run-1", "RowKey": "run", "State": "moved"})
    mark = counter.mark()
    with pytest.raises(TableTransactionError):
        table.submit_transaction([("update", {"PartitionKey": "run-1", "RowKey": "run"},
                                   {"mode": UpdateMode.REPLACE, "etag": stale,
                                    "match_condition": MatchConditions.IfNotModified})])
    [refused] = counter.since(mark)
    assert refused.kind == wire.BATCH
    assert refused.refused
    assert not refused.is_commit


def test_a_query_counts_each_page_and_what_it_returned(counted: tuple[wire.TableWire, TableClient]) -> None:
    counter, table = counted
    table.submit_transaction([("create", {"PartitionKey": "p", "RowKey": f"r{i:02d}"}) for i in range(25)])
    mark = counter.mark()
    assert len(list(table.query_entities("PartitionKey eq 'p'", results_per_page=10))) == 25
    pages = counter.since(mark)
    assert [(page.kind, page.continuation, page.entities) for page in pages] == [
        (wire.QUERY, False, 10), (wire.QUERY, True, 10), (wire.QUERY, True, 5)]
    assert pages[0].filter == "PartitionKey eq 'p'"


def test_format_counts_totals_every_request(counted: tuple[wire.TableWire, TableClient]) -> None:
    counter, table = counted
    table.create_entity({"PartitionKey": "p", "RowKey": "r"})
    table.get_entity("p", "r")
    lines = wire.format_counts(counter.since(0))
    assert lines[-1].split() == ["total", "3"]
