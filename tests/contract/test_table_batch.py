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
    with pytest.raises(TypeError, match="only strings and datetimes"):
        table_batch._properties(row("a", Count=3))
