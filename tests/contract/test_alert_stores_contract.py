"""Rejected alerts and alert status: the fakes the gate tests use and Table Storage on Azurite agree."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from azure.data.tables import TableServiceClient

from shared.adapters.table_store import TableAlertStatusStore, TableRejectedAlertStore
from shared.core.alert_status import AlertState, AlertStatus
from shared.ports import InvalidContinuation
from tests.fakes import FakeAlertStatus, FakeRejectedAlerts

NOW = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
KEY = "a" * 64


@pytest.fixture(params=["fake", "azurite"])
def rejected(request: pytest.FixtureRequest) -> Iterator[object]:
    if request.param == "fake":
        yield FakeRejectedAlerts()
        return
    service = TableServiceClient.from_connection_string(request.getfixturevalue("azurite_connection_string"))
    name = request.getfixturevalue("table_name")
    yield TableRejectedAlertStore(service.create_table(name))
    service.delete_table(name)


@pytest.fixture(params=["fake", "azurite"])
def statuses(request: pytest.FixtureRequest) -> Iterator[object]:
    if request.param == "fake":
        yield FakeAlertStatus()
        return
    service = TableServiceClient.from_connection_string(request.getfixturevalue("azurite_connection_string"))
    name = request.getfixturevalue("table_name")
    yield TableAlertStatusStore(service.create_table(name))
    service.delete_table(name)


def test_rejected_alerts_come_back_newest_first_across_days_a_page_at_a_time(rejected) -> None:  # type: ignore[no-untyped-def]
    # Two days, added out of order: the list is by time received, newest first, whatever the order of adding.
    times = [NOW - dt.timedelta(days=1, minutes=5), NOW - dt.timedelta(days=1), NOW - dt.timedelta(minutes=1), NOW]
    for i, at in enumerate(times):
        rejected.add(f"m{i}", f"reason {i}", f"body {i}", at)
    seen: list[str] = []
    token = None
    for _ in range(10):
        page, token = rejected.list_page(3, token)
        seen += [item["message_id"] for item in page]
        if token is None:
            break
    assert seen == ["m3", "m2", "m1", "m0"]


def test_a_rejected_alert_keeps_its_reason_and_body(rejected) -> None:  # type: ignore[no-untyped-def]
    rejected.add("m1", "the message is not JSON", "{not json", NOW)
    (item,), token = rejected.list_page(10)
    assert (item["message_id"], item["reason"], item["body"]) == ("m1", "the message is not JSON", "{not json")
    assert token is None


def test_a_forged_continuation_is_refused(rejected) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidContinuation):
        rejected.list_page(10, "forged!")


def test_an_alert_status_is_added_once_read_back_and_replaced(statuses) -> None:  # type: ignore[no-untyped-def]
    queued = AlertStatus(KEY, AlertState.QUEUED, "alert-1", "Fired", NOW, outcome="accepted")
    assert statuses.add(queued) is True
    assert statuses.add(queued) is False
    assert statuses.get(KEY) == queued
    planned = AlertStatus(KEY, AlertState.PLANNED, "alert-1", "Fired", NOW, ("r1", "r2"), "started run r1; ...")
    statuses.put(planned)
    assert statuses.get(KEY) == planned


def test_an_alert_status_keeps_its_targets_and_alert_key(statuses) -> None:  # type: ignore[no-untyped-def]
    queued = AlertStatus(KEY, AlertState.QUEUED, "alert-1", "Fired", NOW, outcome="accepted",
                         targets=(("/subscriptions/s/vm1", "c1"), ("", "c2")), alert_key="alert-1|Fired|t")
    statuses.add(queued)
    assert statuses.get(KEY) == queued


def test_an_unknown_alert_key_reads_as_none(statuses) -> None:  # type: ignore[no-untyped-def]
    assert statuses.get("b" * 64) is None
