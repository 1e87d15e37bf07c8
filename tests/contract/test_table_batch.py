"""The app's own entity-group transaction (`shared.adapters.table_batch`) against Azurite, and the SDK's
transaction it falls back to when the SDK lacks the generated client's `send_request`: the same answers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from azure.data.tables import TableClient, TableServiceClient

from local_azure.azurite import AzuriteTables
from shared.adapters import table_batch

pytestmark = pytest.mark.azurite
AT = dt.datetime(2026, 12, 2, 6, 0, 0, 123000, tzinfo=dt.UTC)


class WithoutSendRequest:
    """A table client as an SDK without the generated client's `send_request` would be."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def __getattr__(self, name: str) -> Any:
        if name == "_client":
            raise AttributeError(name)
        return getattr(self._table, name)


@pytest.fixture(params=["own batch", "the SDK's"])
def table(request: pytest.FixtureRequest, azurite: AzuriteTables, table_prefix: str) -> Iterator[Any]:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    client = service.create_table(table_prefix)
    yield client if request.param == "own batch" else WithoutSendRequest(client)
    service.delete_table(table_prefix)


def row(key: str, **properties: Any) -> dict[str, Any]:
    return {"PartitionKey": "p", "RowKey": key, **properties}


def keys(table: Any) -> list[str]:
    return sorted(e["RowKey"] for e in table.list_entities())


def test_inserts_and_a_merge_commit_together(table: Any) -> None:
    table.create_entity(row("marker", Seen="no"))
    assert table_batch.submit(table, [("create", row("a", At=AT)), ("create", row("b'quoted")),
                                      ("merge", row("marker", Seen="yes"))]) is None
    assert keys(table) == ["a", "b'quoted", "marker"]
    assert table.get_entity("p", "marker")["Seen"] == "yes"
    assert table.get_entity("p", "a")["At"] == AT


def test_an_insert_of_an_existing_entity_fails_the_whole_transaction_with_409(table: Any) -> None:
    table.create_entity(row("marker"))
    table.create_entity(row("b"))
    assert table_batch.submit(table, [("create", row("a")), ("create", row("b")), ("merge", row("marker"))]) == 409
    assert keys(table) == ["b", "marker"]


def test_a_merge_of_a_missing_entity_fails_the_whole_transaction_with_404(table: Any) -> None:
    assert table_batch.submit(table, [("create", row("a")), ("merge", row("marker"))]) == 404
    assert keys(table) == []


def test_a_property_of_another_type_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(TypeError, match="only strings, datetimes, booleans and 32-bit integers"):
        table_batch._properties(row("a", Ratio=0.5))
    with pytest.raises(TypeError, match="32-bit"):
        table_batch._properties(row("a", Large=2**40))


def test_a_replace_on_the_etag_read_commits_and_answers_each_new_etag(table: Any) -> None:
    table.create_entity(row("run", State="open"))
    read = table.get_entity("p", "run").metadata["etag"]
    outcome = table_batch.transact(table, [("replace", row("run", State="done"), read), ("create", row("audit-1"))])
    assert outcome.failed is None
    assert outcome.etags == (table.get_entity("p", "run").metadata["etag"],
                             table.get_entity("p", "audit-1").metadata["etag"])
    assert outcome.etags[0] != read
    assert table.get_entity("p", "run")["State"] == "done"


def test_a_replace_on_an_etag_that_no_longer_matches_fails_with_412_and_writes_nothing(table: Any) -> None:
    table.create_entity(row("run", State="open"))
    stale = table.get_entity("p", "run").metadata["etag"]
    table.upsert_entity(row("run", State="changed by another"))
    outcome = table_batch.transact(table, [("replace", row("run", State="done"), stale), ("create", row("audit-1"))])
    assert outcome.failed == 412
    assert keys(table) == ["run"]
    assert table.get_entity("p", "run")["State"] == "changed by another"


def test_a_replace_drops_the_properties_it_does_not_carry(table: Any) -> None:
    table.create_entity(row("run", State="open", Note="gone after"))
    table_batch.transact(table, [("replace", row("run", State="done"), "*")])
    assert "Note" not in table.get_entity("p", "run")


def test_a_delete_with_the_others_removes_the_entity(table: Any) -> None:
    table.create_entity(row("joinable"))
    outcome = table_batch.transact(table, [("create", row("audit-1")), ("delete", row("joinable"))])
    assert outcome.failed is None
    assert outcome.etags[1] == ""
    assert keys(table) == ["audit-1"]


def test_a_delete_of_a_missing_entity_fails_the_whole_transaction_with_404(table: Any) -> None:
    assert table_batch.transact(table, [("create", row("audit-1")), ("delete", row("joinable"))]).failed == 404
    assert keys(table) == []


def test_upserts_insert_or_replace_and_insert_or_merge(table: Any) -> None:
    table.create_entity(row("merged", Kept="yes"))
    table.create_entity(row("replaced", Kept="yes"))
    assert table_batch.submit(table, [("upsert_merge", row("merged", New="1")),
                                      ("upsert_replace", row("replaced", New="1")),
                                      ("upsert_merge", row("new", New="1"))]) is None
    assert (table.get_entity("p", "merged")["Kept"], "Kept" in table.get_entity("p", "replaced")) == ("yes", False)
    assert keys(table) == ["merged", "new", "replaced"]


def test_booleans_and_integers_read_back_as_they_were_sent(table: Any) -> None:
    table_batch.submit(table, [("create", row("a", Writes=True, Count=7))])
    entity = table.get_entity("p", "a")
    assert (entity["Writes"], entity["Count"]) == (True, 7)
