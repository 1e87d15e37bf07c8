"""A repeat firing of a run this process created or read is recorded in one request (the join line with
the run's marker), without reading the run; whenever that memory cannot be trusted, the repeat is
decided on the run as read, exactly as before."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Any

import pytest

from gates.plan import handle_alert
from shared.core.alert_status import intake_key
from shared.core.alerts import parse_alert
from shared.core.model import RequestKind, RunState
from shared.core.plans import parse_plan_book
from shared.run_memory import RememberedRuns
from shared.services import Services
from tests.pipeline import CATALOG, Pipeline, alert, plan_book

FIRST = "2026-11-24T02:58:00Z"


def repeat(minute: int, alert_id: str = "a1") -> dict[str, Any]:
    return alert(alert_id=alert_id, fired=f"2026-11-24T03:{minute:02d}:00Z")


def outcome_of(p: Pipeline, document: dict[str, Any]) -> str:
    status = p.alert_status.get(intake_key(parse_alert(json.dumps(document))))
    assert status is not None
    return status.outcome


def deliver(p: Pipeline, document: dict[str, Any], message_id: str, services: Services | None = None) -> None:
    handle_alert(services or p.services, json.dumps(document).encode(), message_id)


class RunReads:
    """Counts the point reads of runs (the request a repeat no longer needs)."""

    def __init__(self, p: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        read = p.store.get_run

        def counted(run_id: str) -> Any:
            self.count += 1
            return read(run_id)

        monkeypatch.setattr(p.store, "get_run", counted)


def another_process(p: Pipeline) -> Services:
    """The same stores, another host: a memory of its own."""
    return replace(p.services, recent_runs=RememberedRuns())


def other_runs(p: Pipeline, run_id: str) -> list[Any]:
    return [r for r in p.store.all_runs() if r.run_id != run_id]


def started(p: Pipeline) -> str:
    deliver(p, alert(fired=FIRST), "first")
    p.drain()
    return p.run().run_id


def test_a_repeat_of_a_run_this_process_started_is_recorded_without_reading_the_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    run_id = started(p)
    reads = RunReads(p, monkeypatch)
    deliver(p, repeat(5), "second")
    assert reads.count == 0
    assert p.store.joins_if_open == 1
    assert p.events().count("alert_joined") == 1
    assert f"joined open run {run_id}" in outcome_of(p, repeat(5))


def test_a_repeat_delivered_twice_is_one_join_line_and_then_a_duplicate(monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    started(p)
    reads = RunReads(p, monkeypatch)
    deliver(p, repeat(5), "second")
    deliver(p, repeat(5), "second-again")
    assert reads.count == 0
    assert p.events().count("alert_joined") == 1
    assert "duplicate" in outcome_of(p, repeat(5))


def test_a_redelivery_of_the_starting_firing_is_a_duplicate_decided_on_the_run_as_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    started(p)
    reads = RunReads(p, monkeypatch)
    deliver(p, alert(fired=FIRST), "first-again")
    assert p.store.joins_if_open == 0
    assert reads.count >= 1
    assert "alert_joined" not in p.events()
    assert "duplicate" in outcome_of(p, alert(fired=FIRST))


def test_a_repeat_after_the_run_ended_starts_a_new_run() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    first = started(p)
    p.post_decision(p.pending_request(RequestKind.CONSENT), "deny")
    p.drain()
    assert p.store.get_run(first).state is RunState.DENIED  # type: ignore[union-attr]
    deliver(p, repeat(5), "second")  # the memory has the run as it ended here: not tried in one request
    p.drain()
    assert p.store.joins_if_open == 0
    [newer] = other_runs(p, first)
    assert newer.state is RunState.AWAITING_CONSENT
    assert f"started run {newer.run_id}" in outcome_of(p, repeat(5))
    assert p.store.joined_alerts(first) == frozenset()


def test_a_stale_memory_in_another_process_joins_no_ended_run(monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    first = started(p)
    other = another_process(p)
    deliver(p, repeat(3), "second", other)  # the other host reads the run, open, and remembers it
    assert other.recent_runs.get(first) is not None
    deliver(p, alert(condition="Resolved", fired=FIRST), "resolved-1")
    deliver(p, alert(condition="Resolved", fired="2026-11-24T03:03:00Z"), "resolved-2")
    p.drain()
    assert p.store.get_run(first).state is RunState.CANCELLED  # type: ignore[union-attr]
    deliver(p, repeat(9), "third", other)
    p.drain()
    assert p.store.joins_if_open == 1  # the other host tried its memory first, and was told "not open"
    [newer] = other_runs(p, first)
    assert newer.state is RunState.AWAITING_CONSENT
    assert p.store.joined_alerts(first) == frozenset({parse_alert(json.dumps(repeat(3))).alert_id
                                                      + "|Fired|2026-11-24T03:03:00+00:00"})


def test_concurrent_repeats_each_join_once() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    started(p)
    documents = [repeat(m) for m in (5, 6, 7, 8)] * 2  # four firings, each delivered twice at once
    barrier = threading.Barrier(len(documents))
    errors: list[BaseException] = []

    def deliver_at_once(index: int, document: dict[str, Any]) -> None:
        barrier.wait()
        try:
            deliver(p, document, f"m{index}")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=deliver_at_once, args=(i, d)) for i, d in enumerate(documents)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(p.store.all_runs()) == 1
    assert p.events().count("alert_joined") == 4
    assert len(p.store.joined_alerts(p.run().run_id)) == 4


def test_a_run_from_before_the_marker_takes_its_repeats_through_the_read_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    run_id = started(p)
    p.store.forget_marker(run_id)  # as a run written before runs had a marker
    reads = RunReads(p, monkeypatch)
    deliver(p, repeat(5), "second")
    assert p.store.joins_if_open == 1  # tried, told "not open", then read: it is open, so it joins
    assert reads.count == 1
    deliver(p, repeat(6), "third")
    assert p.store.joins_if_open == 1  # remembered as unmarked: straight to the read path
    assert reads.count == 2
    assert p.events().count("alert_joined") == 2
    p.post_decision(p.pending_request(RequestKind.CONSENT), "deny")  # it ends, with no marker to delete
    p.drain()
    assert p.run().state is RunState.DENIED


def test_repeats_joined_in_one_request_count_for_the_resolution_that_cancels_the_run() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    started(p)
    deliver(p, repeat(5, alert_id="a2"), "second")  # another alert of the rule, joined in one request
    assert p.store.joins_if_open == 1
    deliver(p, alert(condition="Resolved", fired=FIRST), "resolved-1")
    p.drain()
    assert p.run().state is RunState.AWAITING_CONSENT  # a2 still fires
    deliver(p, alert(alert_id="a2", condition="Resolved", fired="2026-11-24T03:05:00Z"), "resolved-2")
    p.drain()
    assert p.run().state is RunState.CANCELLED


def shadow_book(version: int = 7) -> str:
    document = json.loads(plan_book("review", ["vm.restart"]))
    document["plans"][0]["shadow"] = True
    document["version"] = version
    return json.dumps(document)


def test_a_shadow_run_takes_its_repeats_in_one_request(monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pipeline(shadow_book())
    started(p)
    assert p.run().state is RunState.SHADOWED
    reads = RunReads(p, monkeypatch)
    deliver(p, repeat(5), "second")
    assert reads.count == 0
    assert p.events().count("alert_joined") == 1
    assert len(p.store.all_runs()) == 1


def test_a_shadow_run_remembered_under_an_older_plan_file_is_decided_afresh() -> None:
    p = Pipeline(shadow_book(7))
    first = started(p)
    newer = replace(p.services, policy=replace(p.services.policy, plans=parse_plan_book(
        shadow_book(8), "plans.json", CATALOG)), recent_runs=p.services.recent_runs)
    deliver(p, repeat(5), "second", newer)  # remembered, but shadowed under version 7: not joined
    [newer_run] = other_runs(p, first)
    assert newer_run.plan_version == 8
    assert p.store.joined_alerts(first) == frozenset()


def ended_here_after_a_repeat(p: Pipeline) -> str:
    """A run that took a repeat (minute 5) and then ended in this process, which remembers it ended."""
    first = started(p)
    deliver(p, repeat(5), "second")
    p.post_decision(p.pending_request(RequestKind.CONSENT), "deny")
    p.drain()
    assert p.store.get_run(first).state is RunState.DENIED  # type: ignore[union-attr]
    return first


def test_a_repeat_the_run_took_before_it_ended_here_is_still_a_duplicate_when_delivered_again() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    first = ended_here_after_a_repeat(p)
    deliver(p, repeat(5), "second-again")
    p.drain()
    assert other_runs(p, first) == []
    assert "duplicate" in outcome_of(p, repeat(5))


def test_a_new_firing_after_the_run_ended_here_asks_for_its_join_line_once(monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    first = ended_here_after_a_repeat(p)
    asked: list[str] = []
    recorded = p.store.join_recorded

    def counted(run_id: str, key: str) -> bool:
        asked.append(key)
        return recorded(run_id, key)

    monkeypatch.setattr(p.store, "join_recorded", counted)
    deliver(p, repeat(9), "third")
    p.drain()
    assert len(asked) == 1
    [newer] = other_runs(p, first)
    assert f"started run {newer.run_id}" in outcome_of(p, repeat(9))
