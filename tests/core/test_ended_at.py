"""When a run ended: set once, by the change that makes it terminal (or its creation, for a run that starts
ended), and never moved by a later change to the ended run, so the ended index keys it the same way
whoever indexes it; a run stored before runs kept it ended at its last change."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

from shared.core import codec
from shared.core.alerts import parse_alert
from shared.core.model import Alert, Mode, Run, RunState
from shared.core.plans import parse_plan_book
from shared.core.requests import Timeouts, expire, open_consent_request
from shared.core.runs import alert_verdict, join_run, start_run
from tests.pipeline import CATALOG, alert, plan_book

NOW = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
ENDED = NOW + dt.timedelta(minutes=31)
LATER = ENDED + dt.timedelta(minutes=5)
TIMEOUTS = Timeouts(consent=dt.timedelta(minutes=30), credentials=dt.timedelta(minutes=15))


def firing(alert_id: str = "a1", rule: str = "vm-not-responding") -> Alert:
    return parse_alert(json.dumps(alert(alert_id=alert_id, rule=rule)))


def asking() -> Run:
    book = parse_plan_book(plan_book("review", ["vm.restart"]), "plans.json", CATALOG)
    plan, parsed = book.plans[0], firing()
    started = start_run("run1", parsed, parsed.target_resource_id, plan, 1, plan.mode, NOW,
                        verdict=alert_verdict(book, plan, parsed, parsed.target_resource_id, plan.mode, NOW)).run
    change = open_consent_request(started, "req1", NOW, TIMEOUTS)
    assert change is not None
    return change.run


def expired() -> Run:
    change = expire(asking(), "req1", ENDED)
    assert change is not None
    assert change.ends_run
    return change.run


def test_an_open_run_has_not_ended() -> None:
    run = asking()
    assert (run.ended_at, run.ended_time) == (None, None)


def test_the_change_that_ends_a_run_sets_when_it_ended() -> None:
    run = expired()
    assert run.state is RunState.EXPIRED
    assert run.ended_at == ENDED


def test_a_later_change_to_an_ended_run_does_not_move_when_it_ended() -> None:
    change = join_run(expired(), firing("a2"), LATER)
    assert change is not None
    assert change.run.updated_at == LATER
    assert change.run.ended_at == ENDED


def test_a_run_that_starts_ended_ended_when_it_was_created() -> None:
    parsed = firing(rule="disk-full")
    run = start_run("run1", parsed, parsed.target_resource_id, None, 1, Mode.REVIEW, NOW).run
    assert run.state is RunState.UNMATCHED
    assert run.ended_at == NOW


def test_when_a_run_ended_is_kept_with_it() -> None:
    run = expired()
    assert codec.run_from_dict(json.loads(json.dumps(codec.run_to_dict(run)))).ended_at == ENDED


def test_a_run_stored_without_it_reads_as_ended_at_its_last_change() -> None:
    stored = codec.run_to_dict(replace(expired(), ended_at=None))
    assert "ended_at" not in stored
    assert codec.run_from_dict(stored).ended_time == ENDED


def test_a_run_stored_without_it_keeps_its_last_change_as_its_end_through_a_later_change() -> None:
    legacy = codec.run_from_dict(codec.run_to_dict(replace(expired(), ended_at=None)))
    change = join_run(legacy, firing("a2"), LATER)
    assert change is not None
    assert change.run.ended_at == ENDED
