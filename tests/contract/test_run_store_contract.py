"""One contract, two backends: the in-memory fake the gate tests use, and Table Storage on Azurite."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator

import pytest
from azure.data.tables import TableServiceClient

from shared.adapters.table_store import TableCorrelationStore, TableRunStore
from shared.core.alerts import parse_alert
from shared.core.errors import ConcurrencyConflict
from shared.core.model import Mode, RunState
from shared.core.plans import parse_plan_book
from shared.core.requests import Timeouts, open_consent_request
from shared.core.runs import start_run
from tests.fakes import FakeCorrelationStore, FakeRunStore
from tests.pipeline import VM, alert, plan_book

NOW = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
TIMEOUTS = Timeouts(dt.timedelta(minutes=30), dt.timedelta(minutes=15))


@pytest.fixture(params=["fake", "azurite"])
def stores(request: pytest.FixtureRequest) -> Iterator[tuple[object, object]]:
    if request.param == "fake":
        yield FakeRunStore(), FakeCorrelationStore()
        return
    connection = request.getfixturevalue("azurite_connection_string")
    name = request.getfixturevalue("table_name")
    service = TableServiceClient.from_connection_string(connection)
    runs = service.create_table(name)
    correlations = service.create_table(name + "c")
    yield TableRunStore(runs), TableCorrelationStore(correlations)
    service.delete_table(name)
    service.delete_table(name + "c")


def new_run(run_id: str = "r1"):  # type: ignore[no-untyped-def]
    book = parse_plan_book(plan_book("review", ["vm.restart"]), "p")
    parsed = parse_alert(json.dumps(alert()))
    return start_run(run_id, parsed, VM.lower(), book.match(parsed, VM.lower()), 1, Mode.REVIEW, NOW)


def test_a_created_run_reads_back_with_its_audit_and_outbox(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    change = new_run()
    assert runs.create_run(change) is True
    run = runs.get_run("r1")
    assert run is not None
    assert run.state is RunState.AWAITING_CONSENT
    assert run.etag
    assert [e.event for e in runs.list_audit("r1")] == [e.event for e in change.audit]
    assert [m.message_id for m in runs.pending_messages("r1")] == [m.message_id for m in change.messages]


def test_creating_the_same_run_twice_keeps_the_first(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    assert runs.create_run(new_run()) is True
    assert runs.create_run(new_run()) is False


def test_a_commit_on_a_stale_etag_is_a_conflict_and_writes_nothing(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run())
    read = runs.get_run("r1")
    first = open_consent_request(read, "q1", NOW, TIMEOUTS)
    second = open_consent_request(read, "q2", NOW, TIMEOUTS)
    runs.commit(first)
    with pytest.raises(ConcurrencyConflict):
        runs.commit(second)
    assert [r.request_id for r in runs.get_run("r1").requests] == ["q1"]
    assert len([e for e in runs.list_audit("r1") if e.event == "consent_requested"]) == 1


def test_concurrent_commits_on_one_read_let_exactly_one_win(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run())
    read = runs.get_run("r1")
    outcomes: list[str] = []

    def commit(request_id: str) -> None:
        try:
            runs.commit(open_consent_request(read, request_id, NOW, TIMEOUTS))
            outcomes.append("won")
        except ConcurrencyConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=commit, args=(f"q{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "won"]


def test_sent_messages_are_cleared_and_pending_ones_are_found_by_age(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run())
    assert runs.runs_with_pending_messages(NOW + dt.timedelta(minutes=1)) == ["r1"]
    runs.delete_messages("r1", [m.message_id for m in runs.pending_messages("r1")])
    assert runs.pending_messages("r1") == []
    assert runs.runs_with_pending_messages(NOW + dt.timedelta(minutes=1)) == []


def test_runs_are_listed_by_state(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run("r1"))
    assert [r.run_id for r in runs.list_runs(RunState.AWAITING_CONSENT)] == ["r1"]
    assert runs.list_runs(RunState.SUCCEEDED) == []


def test_a_correlation_is_inserted_once_and_replaced_only_on_its_etag(stores) -> None:  # type: ignore[no-untyped-def]
    _, correlations = stores
    assert correlations.create("k", "r1", NOW) is True
    assert correlations.create("k", "r2", NOW) is False
    current = correlations.get("k")
    assert current.run_id == "r1"
    assert correlations.replace(current, "r3", NOW) is True
    assert correlations.replace(current, "r4", NOW) is False
    assert correlations.get("k").run_id == "r3"
