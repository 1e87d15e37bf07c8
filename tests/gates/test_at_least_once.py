"""Duplicate delivery, concurrent delivery and a crash between a write and its sends never run an
action twice and never lose a run."""

from __future__ import annotations

import copy
import threading

import pytest

from shared.core.model import Mode, RequestKind, RunState
from shared.topology import Queue
from tests.fakes import Delivery
from tests.pipeline import Pipeline, alert, plan_book

RESTART = "Microsoft.Compute/virtualMachines/restart/action"
READ = "Microsoft.Compute/virtualMachines/read"


def new(mode: str = "autonomous", agent_can: set[str] | None = None) -> Pipeline:
    return Pipeline(plan_book(mode, ["vm.read_instance_view", "vm.restart"]),
                    agent_can=agent_can if agent_can is not None else {READ, RESTART}, user_can={READ, RESTART},
                    ceiling=Mode.AUTONOMOUS)


def deliver_everything_twice(p: Pipeline) -> None:
    for _ in range(500):
        queue = next((q for q, items in p.bus.queues.items() if any(p.due(d) for d in items)), None)
        if queue is None:
            return
        items = p.bus.queues[queue]
        delivery = next(d for d in items if p.due(d))
        items.remove(delivery)
        p.deliver(copy.deepcopy(delivery))
        p.deliver(delivery)
    raise AssertionError("did not settle")


def test_every_message_delivered_twice_runs_each_step_once() -> None:
    p = new()
    p.send_alert(alert())
    deliver_everything_twice(p)
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.calls == [("vm.read_instance_view", "agent"), ("vm.restart", "agent")]


def test_every_message_delivered_twice_with_elevation_runs_the_write_once() -> None:
    p = new("review", agent_can={READ})
    p.send_alert(alert())
    deliver_everything_twice(p)
    p.post_decision(p.pending_request(RequestKind.CONSENT), "approve")
    deliver_everything_twice(p)
    p.post_decision(p.pending_request(RequestKind.CREDENTIALS), "approve")
    deliver_everything_twice(p)
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vm.restart", "user:alice")]
    assert len(p.tokens.exchanges) == 2  # one to check alice's permissions at the grant, one for the write


def test_the_same_alert_delivered_twice_makes_one_run() -> None:
    p = new()
    p.send_alert(alert(), message_id="m1")
    p.send_alert(alert(), message_id="m2")  # a second copy from alerting, under another message id
    p.drain()
    assert len(p.store.all_runs()) == 1
    assert p.arm.resource.executed == [("vm.restart", "agent")]


def two_consumers_at_once(p: Pipeline, step: int) -> None:
    """The attempt message for `step` handed to two consumers, both reading the run before either writes."""
    p.drain(skip={Queue.ATTEMPT.value})
    delivery = p.bus.take(Queue.ATTEMPT.value)
    while delivery is not None and delivery.message.body.get("step") != step:
        p.deliver(delivery)
        p.drain(skip={Queue.ATTEMPT.value})
        delivery = p.bus.take(Queue.ATTEMPT.value)
    assert delivery is not None
    p.store.hold_reads(2)
    threads = [threading.Thread(target=p.deliver, args=(copy.deepcopy(delivery),)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p.drain()


def test_one_attempt_message_to_two_consumers_at_once_runs_the_write_once() -> None:
    p = new()
    p.send_alert(alert())
    two_consumers_at_once(p, step=1)
    assert p.store.conflicts >= 1  # the two claims really raced, and the ETag decided
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.calls.count(("vm.restart", "agent")) == 1


def test_one_attempt_message_of_a_read_to_two_consumers_at_once_records_the_read_once() -> None:
    p = new()
    p.send_alert(alert())
    two_consumers_at_once(p, step=0)
    assert p.store.conflicts >= 1  # both read ARM (a GET may go twice); the ETag let one record it
    assert p.arm.calls.count(("vm.read_instance_view", "agent")) == 2
    assert p.run().state is RunState.SUCCEEDED
    assert [e.details.get("step") for e in p.store.list_audit(p.run().run_id)
            if e.event == "action_executed"] == [0, 1]
    assert p.arm.calls.count(("vm.restart", "agent")) == 1


def test_a_lost_etag_race_at_every_transition_still_runs_each_step_once() -> None:
    p = new("review", agent_can={READ})
    p.send_alert(alert())
    for _ in range(50):
        p.store.conflict_next_commits = 1
        if p.drain() == 0 and not _approve_whatever_is_asked(p):
            break
    assert p.store.conflicts >= 5
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vm.restart", "user:alice")]


def test_two_alerts_at_the_same_instant_make_one_run() -> None:
    p = new("review")
    barrier = threading.Barrier(2)

    def consume(i: int) -> None:
        barrier.wait()
        p.deliver(Delivery(message=_alert_message(i)))

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(p.store.all_runs()) == 1


def _alert_message(i: int):  # type: ignore[no-untyped-def]
    from shared.core.model import OutboundMessage

    return OutboundMessage(Queue.ALERTS.value, f"concurrent-{i}", alert(alert_id=f"same-{i}"), f"c{i}")


STAGES = ["alerts", "consent", "attempt", "elevation", "execution"]


def _approve_whatever_is_asked(p: Pipeline) -> bool:
    run = p.run()
    pending = run.pending_request()
    if run.state.is_terminal or pending is None:
        return False
    assert p.post_decision(pending, "approve").status_code == 200
    return True


@pytest.mark.parametrize("stage", STAGES)
def test_a_crash_between_a_state_write_and_its_sends_still_completes_the_run(stage: str) -> None:
    p = new("review", agent_can={READ})
    p.send_alert(alert())
    for _ in range(50):  # run everything but `stage` until a message for it waits
        if p.bus.queues.get(stage):
            break
        if p.drain(skip={stage}) == 0:
            assert _approve_whatever_is_asked(p)
    delivery = p.bus.take(stage)
    assert delivery is not None
    p.bus.fail_next_sends = 1  # the host dies after the commit, before the send
    assert p.deliver(delivery) is False
    for _ in range(50):
        if p.drain() == 0 and not _approve_whatever_is_asked(p):
            break
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vm.restart", "user:alice")]


def test_a_decision_whose_sends_fail_is_delivered_by_the_resend_relay() -> None:
    from gates.relay import relay_resends

    p = new("review", agent_can={READ, RESTART})
    p.send_alert(alert())
    p.drain()
    p.bus.fail_next_sends = 1
    response = p.post_decision(p.pending_request(RequestKind.CONSENT), "approve")
    assert response.status_code == 200
    assert p.run().state is RunState.RUNNING
    p.drain()
    assert p.arm.calls == []  # nothing was sent yet
    import datetime as dt

    p.clock.advance(dt.timedelta(minutes=1))
    assert relay_resends(p.services) == 1
    assert relay_resends(p.services) == 0  # sent once, then forgotten
    p.drain()
    assert p.run().state is RunState.SUCCEEDED


def test_a_host_dying_during_the_action_fails_the_run_instead_of_repeating_it() -> None:
    p = new()
    p.send_alert(alert())
    p.drain(skip={Queue.ATTEMPT.value})
    first = p.bus.take(Queue.ATTEMPT.value)
    assert first is not None
    p.deliver(first)  # the read step
    p.drain(skip={Queue.ATTEMPT.value})
    restart = p.bus.take(Queue.ATTEMPT.value)
    assert restart is not None

    def die(*args, **kwargs):
        raise SystemExit("host stopped mid-call")

    p.arm.perform = die  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        p.queue_functions[Queue.ATTEMPT.value](p.sb_message(restart))
    p.arm.perform = type(p.arm).perform.__get__(p.arm)  # type: ignore[method-assign]
    restart.delivery_count += 1
    p.deliver(restart)
    p.drain()
    run = p.run()
    assert run.state is RunState.FAILED
    assert "action_interrupted" in p.events()
    assert p.arm.resource.executed == []


def test_an_alert_redelivered_after_its_run_ended_starts_no_second_run() -> None:
    p = new()
    p.send_alert(alert())
    first = p.bus.take(Queue.ALERTS.value)
    assert first is not None
    p.bus.fail_next_sends = 1
    assert p.deliver(copy.deepcopy(first)) is False  # committed, then the host died before the send
    p.bus.take(Queue.ALERTS.value)  # the broker's redelivery of it waits; a duplicate copy runs first
    p.deliver(copy.deepcopy(first))
    p.drain()
    assert p.run().state is RunState.SUCCEEDED
    p.deliver(first)  # and now the redelivery arrives
    p.drain()
    assert len(p.store.all_runs()) == 1
    assert p.arm.calls.count(("vm.restart", "agent")) == 1


def test_a_send_failing_after_an_outcome_is_repeated_by_the_redelivery_and_the_action_is_not() -> None:
    p = new()
    p.send_alert(alert())
    p.drain(skip={Queue.ATTEMPT.value})
    delivery = p.bus.take(Queue.ATTEMPT.value)
    assert delivery is not None
    p.bus.fail_next_sends = 1  # the read's outcome is written; sending the next step's message fails
    assert p.deliver(delivery) is False
    p.drain()
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.calls.count(("vm.read_instance_view", "agent")) == 1


def test_a_claim_writes_no_message_so_no_send_can_fail_between_it_and_the_action() -> None:
    p = new()
    p.send_alert(alert())
    p.drain(skip={Queue.ATTEMPT.value})
    delivery = p.bus.take(Queue.ATTEMPT.value)
    assert delivery is not None
    sent_before = len(p.bus.sent)

    def no_sends_before_the_action(*args, **kwargs):  # type: ignore[no-untyped-def]
        assert len(p.bus.sent) == sent_before
        return type(p.arm).perform(p.arm, *args, **kwargs)

    p.arm.perform = no_sends_before_the_action  # type: ignore[method-assign]
    assert p.deliver(delivery) is True
