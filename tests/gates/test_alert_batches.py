"""The plan stage takes the alerts queue in batches: each alert decided as it would be alone, the repeats of
one remembered run recorded in one transaction, and one failing message never failing the others."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gates.plan import FIRST_ID_PROPERTY, MAX_RETRIES, RETRY_PROPERTY
from shared.core.alert_status import AlertStatus, intake_key
from shared.core.alerts import parse_alert
from shared.topology import Queue
from tests.fakes import Delivery
from tests.pipeline import VM, Pipeline, alert, plan_book

OTHER_VM = VM.rsplit("/", 1)[0] + "/vm-web-09"


def firing(minute: int, resource: str = VM) -> dict[str, Any]:
    return alert(resource=resource, alert_id=f"a-{minute}-{resource[-2:]}", fired=f"2026-11-24T03:{minute:02d}:00Z")


def queued(p: Pipeline, *documents: dict[str, Any]) -> list[Delivery]:
    """The documents put on the alerts queue (by message ids of their own) and taken off it as one batch."""
    for document in documents:
        p.send_alert(document, message_id=document["data"]["essentials"]["alertId"].rsplit("/", 1)[1])
    taken = [p.bus.take(Queue.ALERTS.value) for _ in documents]
    assert all(d is not None for d in taken)
    return [d for d in taken if d is not None]


def started(p: Pipeline, *resources: str) -> None:
    for resource in resources:
        assert p.deliver_batch(queued(p, firing(0, resource)))
    p.drain()


def outcome_of(p: Pipeline, document: dict[str, Any]) -> str:
    status = p.alert_status.get(intake_key(parse_alert(json.dumps(document))))
    assert status is not None
    return status.outcome


def joined_lines(p: Pipeline) -> int:
    return sum([e.event for e in p.store.list_audit(r.run_id)].count("alert_joined") for r in p.store.all_runs())


def failing_status_of(p: Pipeline, monkeypatch: pytest.MonkeyPatch, alert_id: str) -> None:
    """Writing this one alert's status fails (a poison message); every other write goes through."""
    put = p.alert_status.put

    def put_unless_poison(status: AlertStatus) -> None:
        if status.alert_id.endswith(f"/{alert_id}"):
            raise RuntimeError("injected: this alert's status cannot be written")
        put(status)

    monkeypatch.setattr(p.alert_status, "put", put_unless_poison)


def test_repeats_of_one_run_in_a_batch_are_recorded_in_one_transaction() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    started(p, VM)
    calls_before = p.store.joins_if_open
    repeats = [firing(minute) for minute in range(1, 11)]

    assert p.deliver_batch(queued(p, *repeats))

    assert p.store.joins_if_open == calls_before + 1
    assert joined_lines(p) == 10
    assert all("joined open run" in outcome_of(p, document) for document in repeats)


def test_repeats_of_several_runs_in_one_batch_each_join_their_own_run() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    started(p, VM, OTHER_VM)
    repeats = [firing(minute, resource) for minute in range(1, 4) for resource in (VM, OTHER_VM)]

    assert p.deliver_batch(queued(p, *repeats))

    for run in p.store.all_runs():
        assert [e.event for e in p.store.list_audit(run.run_id)].count("alert_joined") == 3
    assert all(run.resource_id in outcome_of(p, document) for document in repeats
               for run in p.store.all_runs() if run.resource_id == document["data"]["essentials"]["alertTargetIDs"][0])


def test_a_batch_delivered_again_changes_nothing() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    started(p, VM)
    batch = queued(p, *[firing(minute) for minute in range(1, 6)])
    assert p.deliver_batch(batch)
    before = (joined_lines(p), [r.run_id for r in p.store.all_runs()])

    assert p.deliver_batch(batch)

    assert (joined_lines(p), [r.run_id for r in p.store.all_runs()]) == before
    assert "a duplicate" in outcome_of(p, firing(1))


def test_the_same_alert_twice_in_one_batch_is_recorded_once() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    started(p, VM)
    twice = firing(1)
    p.send_alert(twice, message_id="copy-1")
    p.send_alert(twice, message_id="copy-2")
    batch = [p.bus.take(Queue.ALERTS.value), p.bus.take(Queue.ALERTS.value), *queued(p, firing(2), firing(3))]

    assert p.deliver_batch([d for d in batch if d is not None])

    assert joined_lines(p) == 3


def test_a_batch_of_new_resources_starts_exactly_one_run_for_each() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))

    assert p.deliver_batch(queued(p, *[firing(minute, resource) for minute in range(3) for resource in (VM, OTHER_VM)]))

    assert sorted(r.resource_id for r in p.store.all_runs()) == sorted([VM.lower(), OTHER_VM.lower()])
    assert joined_lines(p) == 4


def test_a_failing_message_does_not_fail_the_others_and_is_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    started(p, VM)
    failing_status_of(p, monkeypatch, "a-2-01")
    good, poison = [firing(1), firing(3)], firing(2)

    assert p.deliver_batch(queued(p, good[0], poison, good[1]))  # completed: the good ones are not redelivered

    assert all("joined open run" in outcome_of(p, document) for document in good)
    [again] = [d for d in p.bus.queues[Queue.ALERTS.value]]
    assert again.message.body == poison
    assert again.message.properties[FIRST_ID_PROPERTY] == "a-2-01"
    assert again.message.properties[RETRY_PROPERTY] == "1"


def test_a_message_sent_again_is_decided_as_a_redelivery_of_its_first_attempt(
        monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    started(p, VM)
    failing_status_of(p, monkeypatch, "a-2-01")
    assert p.deliver_batch(queued(p, firing(1), firing(2)))
    monkeypatch.undo()
    again = p.bus.take(Queue.ALERTS.value)
    assert again is not None

    assert p.deliver_batch([again, *queued(p, firing(3))])

    # Its first attempt recorded the repeat before its status write failed: recorded once, as a redelivery.
    assert outcome_of(p, firing(2)).startswith(f"a duplicate of an alert run {p.run().run_id} took already")
    assert joined_lines(p) == 3


def test_a_message_that_keeps_failing_is_kept_in_rejected_alerts_with_the_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    started(p, VM)
    failing_status_of(p, monkeypatch, "a-2-01")
    assert p.deliver_batch(queued(p, firing(1), firing(2)))
    for minute in range(3, 3 + MAX_RETRIES):
        again = p.bus.take(Queue.ALERTS.value)
        assert again is not None
        assert p.deliver_batch([again, *queued(p, firing(minute))])

    assert p.bus.queues[Queue.ALERTS.value] == []
    [kept] = p.rejected.items
    assert kept["message_id"] == "a-2-01"
    assert "injected: this alert's status cannot be written" in kept["reason"]
    assert json.loads(kept["body"]) == firing(2)


def test_a_batch_in_which_every_message_fails_fails_whole_for_the_broker_to_redeliver(
        monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    started(p, VM)

    def down(status: AlertStatus) -> None:
        raise ConnectionError("injected: the status table is unreachable")

    monkeypatch.setattr(p.alert_status, "put", down)
    batch = queued(p, firing(1), firing(2))

    assert not p.deliver_batch(batch)

    assert sorted(d.delivery_count for d in p.bus.queues[Queue.ALERTS.value]) == [2, 2]
    assert p.rejected.items == []
