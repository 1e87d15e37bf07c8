"""One contract, two backends: the in-memory fake the gate tests use, and Table Storage on Azurite."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import threading
from collections.abc import Iterator

import pytest
from azure.data.tables import TableServiceClient

from shared.adapters.table_store import JOINABLE_ROW, TableCorrelationStore, TableRunStore, encode_continuation
from shared.core.alerts import parse_alert
from shared.core.change import ChangeBuilder
from shared.core.correlation import replay_key
from shared.core.errors import ConcurrencyConflict
from shared.core.model import Actor, AuditEvent, Mode, RunState
from shared.core.plans import parse_plan_book
from shared.core.requests import Timeouts, open_consent_request
from shared.core.runs import alert_verdict, join_run, start_run
from shared.core.transitions import RunEvent
from shared.ports import MAX_JOINS_AT_ONCE, JoinResult
from tests.fakes import FakeCorrelationStore, FakeRunStore
from tests.pipeline import CATALOG, VM, alert, plan_book

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
    index = service.create_table(name + "i")
    correlations = service.create_table(name + "c")
    yield TableRunStore(runs, index), TableCorrelationStore(correlations)
    for table in (name, name + "i", name + "c"):
        service.delete_table(table)


def new_run(run_id: str = "r1"):  # type: ignore[no-untyped-def]
    book = parse_plan_book(plan_book("review", ["vm.restart"]), "p", CATALOG)
    parsed = parse_alert(json.dumps(alert()))
    plan = book.match(parsed, VM.lower())
    assert plan is not None
    return start_run(run_id, parsed, VM.lower(), plan, 1, Mode.REVIEW, NOW,
                     verdict=alert_verdict(book, plan, parsed, VM.lower(), Mode.REVIEW, NOW))


def test_a_created_run_reads_back_with_its_audit_and_outbox(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    change = new_run()
    assert runs.create_run(change) is True
    run = runs.get_run("r1")
    assert run is not None
    assert run.state is RunState.AWAITING_CONSENT
    assert run.etag
    assert [e.event for e in runs.list_audit("r1")] == [e.event for e in change.audit]
    assert run.outbox == change.messages == (run.outbox[0],)
    assert run.outbox[0].queue == "consent"


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


def test_a_run_is_indexed_as_open_from_before_it_is_written(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run("r1"))
    assert [o.run_id for o in runs.open_runs()] == ["r1"]


def test_open_runs_are_listed_by_their_current_state(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run("r1"))
    assert [r.run_id for r in runs.list_runs(RunState.AWAITING_CONSENT).runs] == ["r1"]
    assert runs.list_runs(RunState.RUNNING).runs == ()


def ended(runs, run_id: str, minute: int):  # type: ignore[no-untyped-def]
    change = new_run(run_id)
    runs.create_run(change)
    run = runs.get_run(run_id)
    finished = dataclasses.replace(run, state=RunState.SUCCEEDED, updated_at=NOW + dt.timedelta(minutes=minute))
    runs.mark_ended(finished)
    return finished


def test_an_ended_run_leaves_the_open_index_for_the_ended_one(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    ended(runs, "r1", 1)
    assert runs.open_runs() == []
    assert [r.run_id for r in runs.list_runs(RunState.SUCCEEDED).runs] == ["r1"]
    assert [r.run_id for r in runs.list_runs().runs] == ["r1"]
    assert runs.list_runs(RunState.FAILED).runs == ()


def test_marking_a_run_ended_twice_lists_it_once(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    finished = ended(runs, "r1", 1)
    runs.mark_ended(finished)
    assert [r.run_id for r in runs.list_runs(RunState.SUCCEEDED).runs] == ["r1"]


def test_ended_runs_page_newest_first_with_a_continuation(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    for minute in range(5):
        ended(runs, f"r{minute}", minute)
    first = runs.list_runs(RunState.SUCCEEDED, limit=2)
    assert [r.run_id for r in first.runs] == ["r4", "r3"]
    second = runs.list_runs(RunState.SUCCEEDED, limit=2, continuation=first.continuation)
    assert [r.run_id for r in second.runs] == ["r2", "r1"]
    last = runs.list_runs(RunState.SUCCEEDED, limit=2, continuation=second.continuation)
    assert [r.run_id for r in last.runs] == ["r0"]
    assert last.continuation is None


def ended_at(runs, run_id: str, at: dt.datetime, state: RunState = RunState.SUCCEEDED):  # type: ignore[no-untyped-def]
    runs.create_run(new_run(run_id))
    finished = dataclasses.replace(runs.get_run(run_id), state=state, updated_at=at)
    runs.mark_ended(finished)
    return finished


def every_page(runs, state: RunState | None, limit: int) -> list[list[str]]:  # type: ignore[no-untyped-def]
    pages = [runs.list_runs(state, limit=limit)]
    while pages[-1].continuation:
        pages.append(runs.list_runs(state, limit=limit, continuation=pages[-1].continuation))
    return [[r.run_id for r in page.runs] for page in pages]


DAY = dt.timedelta(days=1)
MIDNIGHT = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)


def test_ended_runs_page_newest_first_across_days_with_empty_days_between(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    for n, days_ago in enumerate((0, 0, 1, 9, 9, 9, 40)):  # days 2-8 and 10-39 hold no run
        ended_at(runs, f"r{n}", MIDNIGHT + dt.timedelta(hours=12 - n) - days_ago * DAY)
    assert every_page(runs, RunState.SUCCEEDED, 2) == [["r0", "r1"], ["r2", "r3"], ["r4", "r5"], ["r6"]]
    assert every_page(runs, RunState.SUCCEEDED, 100) == [[f"r{n}" for n in range(7)]]


def test_a_page_that_ends_on_a_days_last_run_goes_on_with_the_day_before(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    ended_at(runs, "after-midnight", MIDNIGHT)
    ended_at(runs, "before-midnight", MIDNIGHT - dt.timedelta(milliseconds=1))
    ended_at(runs, "day-before", MIDNIGHT - DAY)
    assert every_page(runs, RunState.SUCCEEDED, 1) == [["after-midnight"], ["before-midnight"], ["day-before"]]


def test_runs_of_another_state_on_the_same_days_are_not_on_a_states_pages(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    ended_at(runs, "ok-today", MIDNIGHT + dt.timedelta(hours=2))
    ended_at(runs, "failed-today", MIDNIGHT + dt.timedelta(hours=1), RunState.FAILED)
    ended_at(runs, "failed-long-ago", MIDNIGHT - 30 * DAY, RunState.FAILED)
    assert every_page(runs, RunState.FAILED, 1) == [["failed-today"], ["failed-long-ago"]]
    assert every_page(runs, None, 2) == [["ok-today", "failed-today"], ["failed-long-ago"]]


def test_open_runs_lead_the_list_of_every_state_and_its_next_page_starts_at_the_newest_ended(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run("open"))
    ended_at(runs, "done", MIDNIGHT - 3 * DAY)
    assert every_page(runs, None, 1) == [["open"], ["done"]]


@pytest.mark.parametrize("forged", ["' or 1 eq 1", "%%%", "ZW5kZWR8", "b3BlbnwxMDA"])  # and "ended|", "open|100"
def test_a_continuation_this_store_did_not_issue_is_refused(stores, forged: str) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    ended_at(runs, "r1", MIDNIGHT)
    with pytest.raises(ValueError, match="continuation"):
        runs.list_runs(RunState.SUCCEEDED, continuation=forged)


def test_a_continuation_of_another_state_or_with_a_day_that_is_not_its_times_is_refused(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    for n in range(3):
        ended_at(runs, f"r{n}", MIDNIGHT - n * DAY)
    token = runs.list_runs(RunState.SUCCEEDED, limit=1).continuation
    position = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    _, _, day, rest = position.split("|", 3)
    another_day = position.replace(f"|{day}|", f"|{int(day) - 5:08d}|")
    for forged in (encode_continuation(position.replace("succeeded", "failed")), encode_continuation(another_day),
                   encode_continuation(f"ended|succeeded|{day}|{rest}'")):
        with pytest.raises(ValueError, match="continuation"):
            runs.list_runs(RunState.SUCCEEDED, continuation=forged)
    with pytest.raises(ValueError, match="continuation"):
        runs.list_runs(RunState.FAILED, continuation=token)
    assert [r.run_id for r in runs.list_runs(RunState.SUCCEEDED, continuation=token).runs] == ["r1", "r2"]


def test_ended_runs_are_read_by_a_period_across_days_with_a_continuation(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    for n in range(6):  # one a day at noon, newest first: r0 today .. r5 five days ago
        ended_at(runs, f"r{n}", MIDNIGHT + dt.timedelta(hours=12) - n * DAY)
    since, until = MIDNIGHT + dt.timedelta(hours=12) - 4 * DAY, MIDNIGHT + dt.timedelta(hours=12)  # r1..r4
    first = runs.ended_between(RunState.SUCCEEDED, since, until, limit=3)
    assert [r.run_id for r in first.runs] == ["r1", "r2", "r3"]
    rest = runs.ended_between(RunState.SUCCEEDED, since, until, limit=3, continuation=first.continuation)
    assert [r.run_id for r in rest.runs] == ["r4"]
    assert rest.continuation is None
    assert runs.ended_between(RunState.SUCCEEDED, since - 30 * DAY, since - 20 * DAY).runs == ()


def shadowed(runs, run_id: str, minute: int, replay: str = ""):  # type: ignore[no-untyped-def]
    book = parse_plan_book(plan_book("autonomous", ["vm.restart"]), "p", CATALOG)
    parsed = parse_alert(json.dumps(alert()))
    plan = book.match(parsed, VM.lower())
    at = NOW + dt.timedelta(minutes=minute)
    verdict = alert_verdict(book, plan, parsed, VM.lower(), Mode.AUTONOMOUS, at, app_shadow=True)
    key = replay_key(replay, parsed.rule_id, VM) if replay else "k"
    change = start_run(run_id, parsed, VM.lower(), plan, 1, Mode.AUTONOMOUS, at, key, verdict, {0: []})
    runs.create_run(change)
    runs.mark_ended(change.run)
    return change.run


def test_ended_runs_are_read_by_period_newest_first_with_a_continuation(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    for minute in range(6):
        shadowed(runs, f"s{minute}", minute)
    ended(runs, "other-state", 2)
    since, until = NOW + dt.timedelta(minutes=1), NOW + dt.timedelta(minutes=5)  # minutes 1..4
    first = runs.ended_between(RunState.SHADOWED, since, until, limit=3)
    assert [r.run_id for r in first.runs] == ["s4", "s3", "s2"]
    rest = runs.ended_between(RunState.SHADOWED, since, until, limit=3, continuation=first.continuation)
    assert [r.run_id for r in rest.runs] == ["s1"]
    assert rest.continuation is None
    with pytest.raises(ValueError, match="continuation"):
        runs.ended_between(RunState.SHADOWED, since, until, continuation=runs.list_runs(limit=1).continuation)


def test_the_index_summary_carries_the_guardrails_verdict_and_the_replay(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    shadowed(runs, "s1", 0, replay="rp1")
    [summary] = runs.ended_between(RunState.SHADOWED, NOW, NOW + dt.timedelta(minutes=1)).runs
    assert (summary.effect, summary.writes, summary.credentials, summary.replay) == ("allow", True, "not needed",
                                                                                     "rp1")
    assert summary.decided_by == "plan plan's autonomous mode"


def repeat_committed(runs, run_id: str, minute: int):  # type: ignore[no-untyped-def]
    """A repeat firing written into the ended run itself (as a shadowed run may absorb one)."""
    change = join_run(runs.get_run(run_id), parse_alert(json.dumps(alert(alert_id="again"))),
                      NOW + dt.timedelta(minutes=minute))
    assert change is not None
    assert not change.ends_run
    return runs.commit(change)


def test_a_run_indexed_again_after_a_later_change_is_listed_once_at_when_it_ended(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    shadowed(runs, "s1", 0)
    runs.mark_ended(repeat_committed(runs, "s1", 5))
    assert [r.run_id for r in runs.list_runs(RunState.SHADOWED).runs] == ["s1"]
    [summary] = runs.ended_between(RunState.SHADOWED, NOW, NOW + dt.timedelta(minutes=1)).runs
    assert summary.ended_at == NOW


def test_a_run_keeps_when_it_ended_through_a_later_change(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    shadowed(runs, "s1", 0)
    repeat_committed(runs, "s1", 5)
    stored = runs.get_run("s1")
    assert (stored.ended_at, stored.updated_at) == (NOW, NOW + dt.timedelta(minutes=5))


def test_a_repeat_firing_is_recorded_once_beside_its_run_and_read_with_its_audit(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run("r1"))
    event = AuditEvent(0, "alert_joined", NOW + dt.timedelta(minutes=5), Actor.system("azure-monitor"), "again")
    assert runs.record_join("r1", "a|Fired|t2", event) is True
    assert runs.record_join("r1", "a|Fired|t2", event) is False
    assert runs.joined_alerts("r1") == frozenset({"a|Fired|t2"})
    assert runs.join_recorded("r1", "a|Fired|t2") is True
    assert runs.join_recorded("r1", "a|Fired|t3") is False
    assert [e.event for e in runs.list_audit("r1")][-1] == "alert_joined"


def joined_line(minute: int = 5) -> AuditEvent:
    return AuditEvent(0, "alert_joined", NOW + dt.timedelta(minutes=minute), Actor.system("azure-monitor"), "again")


def end(runs, run_id: str) -> None:  # type: ignore[no-untyped-def]
    b = ChangeBuilder(runs.get_run(run_id), NOW + dt.timedelta(minutes=1))
    b.end(RunEvent.ALERT_RESOLVED, Actor.system("azure-monitor"), "resolved")
    change = b.build()
    assert change.ends_run
    runs.commit(change)


def forget_marker(runs, run_id: str) -> None:  # type: ignore[no-untyped-def]
    """As a run written before runs had a marker."""
    if isinstance(runs, FakeRunStore):
        runs.forget_marker(run_id)
    else:
        runs._table.delete_entity(run_id, JOINABLE_ROW)


def test_a_repeat_of_an_open_run_is_recorded_in_one_batch_once(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run("r1"))
    assert runs.record_join_if_open("r1", "a|Fired|t2", joined_line()) is JoinResult.JOINED
    assert runs.record_join_if_open("r1", "a|Fired|t2", joined_line()) is JoinResult.DUPLICATE
    assert runs.record_join("r1", "a|Fired|t2", joined_line()) is False  # the same line either way
    assert runs.joined_alerts("r1") == frozenset({"a|Fired|t2"})
    assert [e.event for e in runs.list_audit("r1")][-1] == "alert_joined"


def test_a_commit_that_does_not_end_the_run_leaves_it_taking_repeats(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run("r1"))
    runs.commit(open_consent_request(runs.get_run("r1"), "q1", NOW, TIMEOUTS))
    assert runs.record_join_if_open("r1", "a|Fired|t2", joined_line()) is JoinResult.JOINED


def test_a_repeat_of_an_ended_run_is_not_recorded(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run("r1"))
    end(runs, "r1")
    assert runs.record_join_if_open("r1", "a|Fired|t2", joined_line()) is JoinResult.NOT_OPEN
    assert runs.joined_alerts("r1") == frozenset()
    assert runs.get_run("r1").state is RunState.CANCELLED


def test_a_repeat_the_run_took_before_it_ended_is_still_a_duplicate(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run("r1"))
    assert runs.record_join_if_open("r1", "a|Fired|t2", joined_line()) is JoinResult.JOINED
    end(runs, "r1")
    assert runs.record_join_if_open("r1", "a|Fired|t2", joined_line()) is JoinResult.DUPLICATE


def test_a_run_that_ends_at_once_takes_no_repeat_without_a_read(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    parsed = parse_alert(json.dumps(alert()))
    runs.create_run(start_run("u1", parsed, VM.lower(), None, 1, Mode.REVIEW, NOW))  # unmatched: ended
    assert runs.record_join_if_open("u1", "a|Fired|t2", joined_line()) is JoinResult.NOT_OPEN


def test_a_shadow_run_takes_repeats_though_it_ended_at_once(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    shadowed(runs, "s1", 0)
    assert runs.record_join_if_open("s1", "a|Fired|t2", joined_line()) is JoinResult.JOINED


def test_a_run_from_before_the_marker_takes_repeats_only_through_a_read_and_still_ends(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run("r1"))
    forget_marker(runs, "r1")
    assert runs.record_join_if_open("r1", "a|Fired|t2", joined_line()) is JoinResult.NOT_OPEN
    assert runs.joined_alerts("r1") == frozenset()
    end(runs, "r1")  # no marker to delete: it ends all the same
    run = runs.get_run("r1")
    assert run.state is RunState.CANCELLED
    assert [e.event for e in runs.list_audit("r1")][-1] == "run_ended"


def test_repeats_of_one_run_are_recorded_together_in_one_transaction(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run("r1"))
    keys = [f"a|Fired|t{n}" for n in range(MAX_JOINS_AT_ONCE)]
    assert runs.record_joins_if_open("r1", [(key, joined_line()) for key in keys]) is JoinResult.JOINED
    assert runs.joined_alerts("r1") == frozenset(keys)


def test_repeats_recorded_together_are_all_or_none_when_one_is_a_duplicate(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run("r1"))
    assert runs.record_join_if_open("r1", "a|Fired|t2", joined_line()) is JoinResult.JOINED
    together = [("a|Fired|t1", joined_line()), ("a|Fired|t2", joined_line()), ("a|Fired|t3", joined_line())]
    assert runs.record_joins_if_open("r1", together) is JoinResult.DUPLICATE
    assert runs.joined_alerts("r1") == frozenset({"a|Fired|t2"})


def test_repeats_recorded_together_after_the_run_ended_are_not_recorded(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run("r1"))
    end(runs, "r1")
    assert runs.record_joins_if_open("r1", [("a|Fired|t1", joined_line()), ("a|Fired|t2", joined_line())]) \
        is JoinResult.NOT_OPEN
    assert runs.joined_alerts("r1") == frozenset()


def test_more_repeats_than_one_transaction_holds_are_refused_unwritten(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run("r1"))
    too_many = [(f"a|Fired|t{n}", joined_line()) for n in range(MAX_JOINS_AT_ONCE + 1)]
    with pytest.raises(ValueError, match="repeats of distinct alerts at once"):
        runs.record_joins_if_open("r1", too_many)
    assert runs.joined_alerts("r1") == frozenset()


def test_concurrent_repeats_are_each_recorded_once(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.create_run(new_run("r1"))
    keys = [f"a|Fired|t{n % 4}" for n in range(8)]  # four firings, each delivered twice at once
    results: list[JoinResult] = []
    lock = threading.Lock()

    def repeat(key: str) -> None:
        result = runs.record_join_if_open("r1", key, joined_line())
        with lock:
            results.append(result)

    threads = [threading.Thread(target=repeat, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.value for r in results) == ["duplicate"] * 4 + ["joined"] * 4
    assert runs.joined_alerts("r1") == frozenset(keys)


def test_a_resend_is_noted_until_cleared(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    runs.request_resend("r1")
    runs.request_resend("r1")
    assert runs.resend_requests() == ["r1"]
    runs.clear_resend("r1")
    assert runs.resend_requests() == []


def test_a_correlation_is_inserted_once_and_replaced_only_on_its_etag(stores) -> None:  # type: ignore[no-untyped-def]
    _, correlations = stores
    assert correlations.create("k", "r1", NOW) is not None
    assert correlations.create("k", "r2", NOW) is None
    current = correlations.get("k")
    assert current.run_id == "r1"
    assert correlations.replace(current, "r3", NOW) is not None
    assert correlations.replace(current, "r4", NOW) is None
    assert correlations.get("k").run_id == "r3"


def test_a_written_correlation_is_the_row_a_read_gives_etag_included(stores) -> None:  # type: ignore[no-untyped-def]
    _, correlations = stores
    created = correlations.create("k", "r1", NOW)
    assert created == correlations.get_fresh("k")
    replaced = correlations.replace(created, "r2", NOW)
    assert replaced == correlations.get_fresh("k")


def test_a_replaced_correlation_names_the_runs_it_named_before_newest_first(stores) -> None:  # type: ignore[no-untyped-def]
    _, correlations = stores
    correlations.create("k", "r1", NOW)
    correlations.replace(correlations.get("k"), "r2", NOW)
    correlations.replace(correlations.get("k"), "r3", NOW)
    assert correlations.get_fresh("k").earlier == ("r2", "r1")


def test_a_repeat_line_keeps_typed_properties_on_the_table(stores) -> None:  # type: ignore[no-untyped-def]
    runs, _ = stores
    if isinstance(runs, FakeRunStore):
        pytest.skip("the table's own property types")
    runs.create_run(new_run("r1"))
    line = joined_line()
    assert runs.record_joins_if_open("r1", [("a|Fired|t1", line), ("a|Fired|'t2'", line)]) is JoinResult.JOINED
    [first, second] = sorted(runs._table.query_entities("PartitionKey eq 'r1' and AlertKey ne ''"),
                             key=lambda e: e["AlertKey"])
    assert first["At"] == second["At"] == line.at
    assert (first["AlertKey"], second["AlertKey"], first["Event"]) == ("a|Fired|'t2'", "a|Fired|t1", line.event)
