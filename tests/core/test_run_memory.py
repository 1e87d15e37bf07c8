"""The plan stage's memory of runs is bounded, and a change says when it ends an open run (the store then
removes the marker that lets repeats be recorded without reading the run)."""

from __future__ import annotations

import datetime as dt
import json

from shared.core.alerts import parse_alert
from shared.core.change import ChangeBuilder
from shared.core.model import Actor, Mode
from shared.core.plans import parse_plan_book
from shared.core.runs import alert_verdict, start_run
from shared.core.transitions import RunEvent
from shared.run_memory import RememberedRuns
from tests.pipeline import CATALOG, VM, alert, plan_book

NOW = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)


def opened(run_id: str = "r1"):  # type: ignore[no-untyped-def]
    book = parse_plan_book(plan_book("review", ["vm.restart"]), "p", CATALOG)
    parsed = parse_alert(json.dumps(alert()))
    plan = book.match(parsed, VM.lower())
    assert plan is not None
    return start_run(run_id, parsed, VM.lower(), plan, 1, Mode.REVIEW, NOW,
                     verdict=alert_verdict(book, plan, parsed, VM.lower(), Mode.REVIEW, NOW)).run


def test_the_memory_forgets_the_least_recently_used_run_beyond_its_capacity() -> None:
    memory = RememberedRuns(capacity=2)
    memory.remember(opened("r1"))
    memory.remember(opened("r2"))
    assert memory.get("r1") is not None  # r1 used last: r2 goes first
    memory.remember(opened("r3"))
    assert (memory.get("r1") is not None, memory.get("r2"), memory.get("r3") is not None) == (True, None, True)


def test_a_run_remembered_as_unmarked_stays_so_until_remembered_again() -> None:
    memory = RememberedRuns()
    memory.remember(opened(), marked=False)
    assert memory.get("r1").marked is False  # type: ignore[union-attr]


def test_a_change_that_ends_an_open_run_says_so() -> None:
    b = ChangeBuilder(opened(), NOW)
    b.end(RunEvent.ALERT_RESOLVED, Actor.system("azure-monitor"), "resolved")
    ended = b.build()
    assert ended.ends_run is True
    later = ChangeBuilder(ended.run, NOW)
    later.log("alert_resolved", Actor.system("azure-monitor"), "again")
    assert later.build().ends_run is False  # already ended: nothing to remove again


def test_a_change_that_keeps_the_run_open_does_not_end_it() -> None:
    b = ChangeBuilder(opened(), NOW)
    b.log("alert_joined", Actor.system("azure-monitor"), "again")
    assert b.build().ends_run is False


def test_a_run_created_ended_is_no_change_that_ends_one() -> None:
    parsed = parse_alert(json.dumps(alert()))
    assert start_run("u1", parsed, VM.lower(), None, 1, Mode.REVIEW, NOW).ends_run is False  # unmatched


def test_a_remembered_run_that_ended_here_is_remembered_ended() -> None:
    memory = RememberedRuns()
    run = opened("r1")
    memory.remember(run, marked=False)
    b = ChangeBuilder(run, NOW)
    b.end(RunEvent.CONSENT_DENIED, Actor.system(), "denied")
    memory.ended(b.build().run)
    remembered = memory.get("r1")
    assert remembered is not None
    assert (remembered.run.state.is_terminal, remembered.marked) == (True, False)


def test_a_run_that_ended_is_not_remembered_if_it_was_not_before() -> None:
    memory = RememberedRuns()
    b = ChangeBuilder(opened("r1"), NOW)
    b.end(RunEvent.CONSENT_DENIED, Actor.system(), "denied")
    memory.ended(b.build().run)
    assert memory.get("r1") is None
