"""A fresh alert goes to the queue while its status row is written; an older one only once the row is new.
Either way a post answers after both, and an alert is queued once."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

import azure.functions as func
import pytest

from shared.core.alert_status import AlertState, AlertStatus
from shared.core.model import OutboundMessage
from shared.ports import MessageTooLarge
from tests.pipeline import Pipeline, alert, plan_book

FIRED = "2026-11-24T02:58:00Z"  # two minutes before the pipeline's clock starts


def post(p: Pipeline) -> func.HttpResponse:
    return p.http("POST", "alerts", "https://gates.example/api/alerts", body=json.dumps(alert(fired=FIRED)).encode())


def queued_alerts(p: Pipeline) -> list[OutboundMessage]:
    return [m for m in p.bus.sent if m.queue == "alerts"]


def test_a_fresh_alert_is_sent_while_its_status_row_is_written() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    sent = threading.Event()
    seen_during_write: list[bool] = []
    send, add = p.bus.send, p.alert_status.add

    def sending(messages: Sequence[OutboundMessage]) -> None:
        send(messages)
        sent.set()

    def adding(status: AlertStatus) -> bool:
        seen_during_write.append(sent.wait(timeout=5))  # the write waits for the send: they overlap
        return add(status)

    p.bus.send = sending  # type: ignore[method-assign]
    p.alert_status.add = adding  # type: ignore[method-assign]
    assert post(p).status_code == 202
    assert seen_during_write == [True]


def test_an_alert_older_than_half_the_duplicate_window_is_sent_only_after_its_status_row_is_new() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    p.clock.advance(dt.timedelta(minutes=6))
    sends_during_write: list[int] = []
    add = p.alert_status.add

    def adding(status: AlertStatus) -> bool:
        sends_during_write.append(len(queued_alerts(p)))
        return add(status)

    p.alert_status.add = adding  # type: ignore[method-assign]
    assert post(p).status_code == 202
    assert sends_during_write == [0]
    assert len(queued_alerts(p)) == 1


def test_a_fresh_alert_posted_again_after_planning_is_a_duplicate_the_queue_drops() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    post(p)
    p.drain()
    p.clock.advance(dt.timedelta(minutes=2))
    again = post(p)
    assert again.status_code == 200
    assert json.loads(again.get_body())["duplicate"] is True
    assert not p.bus.queues.get("alerts")
    p.drain()
    assert len(p.store.all_runs()) == 1


def test_a_retry_after_the_duplicate_window_of_a_planned_alert_is_not_sent_again() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    post(p)
    p.drain()
    p.clock.advance(dt.timedelta(minutes=15))  # the queue no longer remembers the id; the status row does
    again = post(p)
    assert again.status_code == 200
    assert len(queued_alerts(p)) == 1
    assert len(p.store.all_runs()) == 1


def test_a_status_write_that_fails_fails_the_post_after_its_send_has_finished() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    send = p.bus.send

    def slow_send(messages: Sequence[OutboundMessage]) -> None:
        time.sleep(0.05)
        send(messages)

    def failing_add(status: AlertStatus) -> bool:
        raise ConnectionError("injected: the table is unreachable")

    p.bus.send = slow_send  # type: ignore[method-assign]
    add, p.alert_status.add = p.alert_status.add, failing_add  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        post(p)
    assert len(queued_alerts(p)) == 1  # no send outlives its post
    p.alert_status.add = add  # type: ignore[method-assign]
    retry = post(p)  # the sender's retry: its status written now, its send dropped as a repeat
    assert retry.status_code == 202
    assert json.loads(retry.get_body())["key"] in p.alert_status.rows
    assert len(p.bus.queues["alerts"]) == 1
    p.drain()
    assert len(p.store.all_runs()) == 1


def test_a_send_that_fails_beside_a_new_status_row_fails_the_post_and_its_retry_sends_it() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    p.bus.fail_next_sends = 1
    with pytest.raises(ConnectionError):
        post(p)
    accepted: dict[str, Any] = json.loads(post(p).get_body())
    assert accepted["status"] == 202
    p.drain()
    assert len(p.store.all_runs()) == 1


def test_a_fresh_alert_the_queue_refused_before_and_takes_now_is_accepted_and_queued() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    send = p.bus.send

    def refuse(messages: Sequence[OutboundMessage]) -> None:
        raise MessageTooLarge("The received message exceeds the limit")

    p.bus.send = refuse  # type: ignore[method-assign]
    assert post(p).status_code == 413
    p.bus.send = send  # type: ignore[method-assign]  # the namespace moved to a tier with larger messages
    accepted = post(p)
    assert accepted.status_code == 202
    key = json.loads(accepted.get_body())["key"]
    assert p.alert_status.rows[key].state is AlertState.QUEUED
    p.drain()
    assert len(p.store.all_runs()) == 1


def test_an_older_alert_the_queue_refused_before_is_refused_again_without_a_send() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    p.clock.advance(dt.timedelta(minutes=6))
    send = p.bus.send

    def refuse(messages: Sequence[OutboundMessage]) -> None:
        raise MessageTooLarge("The received message exceeds the limit")

    p.bus.send = refuse  # type: ignore[method-assign]
    assert post(p).status_code == 413
    p.bus.send = send  # type: ignore[method-assign]
    assert post(p).status_code == 413
    assert queued_alerts(p) == []
