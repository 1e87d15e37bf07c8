"""A run whose next message was lost or dead-lettered still ends: the stall sweeper fails a write whose
host died before ARM answered (never repeating it; for reads and accepted writes see
test_interrupted_steps), expires a request whose deadline message was lost, drops
granted credentials left unused, and sends again the message a run was waiting for."""

from __future__ import annotations

import contextlib
import datetime as dt

from gates.relay import sweep_stalled
from shared.core.model import RequestKind, RunState
from shared.topology import Queue
from tests.pipeline import SUB, Pipeline, alert, plan_book

READ = "Microsoft.Compute/virtualMachines/read"
RESTART = "Microsoft.Compute/virtualMachines/restart/action"
VM_IN_RG = f"/subscriptions/{SUB}/resourceGroups/rg-prod-web/providers/Microsoft.Compute/virtualMachines"


def new(mode: str = "autonomous", agent_can: set[str] | None = None) -> Pipeline:
    p = Pipeline(plan_book(mode, ["vm.read_instance_view", "vm.restart"]),
                 agent_can={READ, RESTART} if agent_can is None else agent_can, user_can={READ, RESTART})
    p.send_alert(alert())
    return p


def lose(p: Pipeline, queue: str) -> None:
    """The queue's messages are gone (dead-lettered after an outage)."""
    p.bus.queues[queue] = []


def test_a_lost_attempt_message_is_sent_again_and_the_run_completes() -> None:
    p = new()
    p.drain(skip={Queue.ATTEMPT.value})
    lose(p, Queue.ATTEMPT.value)
    p.clock.advance(dt.timedelta(minutes=11))
    assert sweep_stalled(p.services) == 1
    p.drain()
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vm.restart", "agent")]


def test_a_write_left_in_flight_by_a_dead_host_fails_the_run_without_repeating_it() -> None:
    p = new()
    p.drain(skip={Queue.ATTEMPT.value})
    p.deliver(p.bus.take(Queue.ATTEMPT.value))  # type: ignore[arg-type]  # the read step
    p.drain(skip={Queue.ATTEMPT.value})
    delivery = p.bus.take(Queue.ATTEMPT.value)
    assert delivery is not None
    p.arm.perform = lambda *a, **k: (_ for _ in ()).throw(SystemExit("host died"))  # type: ignore[method-assign]
    with contextlib.suppress(SystemExit):
        p.queue_functions[Queue.ATTEMPT.value](p.sb_message(delivery))
    p.clock.advance(dt.timedelta(minutes=16))
    assert sweep_stalled(p.services) == 1
    assert p.run().state is RunState.FAILED
    assert "action_interrupted" in p.events()
    assert p.arm.resource.executed == []


def test_a_request_whose_deadline_message_was_lost_still_expires() -> None:
    p = new("review")
    p.drain()
    lose(p, Queue.DEADLINES.value)
    p.clock.advance(dt.timedelta(minutes=36))
    sweep_stalled(p.services)
    p.drain()
    assert p.run().state is RunState.EXPIRED
    assert p.arm.resource.executed == []


def test_a_lost_execution_message_is_sent_again_while_the_grant_is_fresh() -> None:
    p = new(agent_can={READ})
    p.drain()
    p.post_decision(p.pending_request(RequestKind.CREDENTIALS), "approve")
    lose(p, Queue.EXECUTION.value)
    p.clock.advance(dt.timedelta(minutes=11))
    sweep_stalled(p.services)
    p.drain()
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vm.restart", "user:alice")]


def test_granted_credentials_left_unused_are_dropped_and_the_run_ends_with_no_action() -> None:
    p = new(agent_can={READ})
    p.drain()
    p.post_decision(p.pending_request(RequestKind.CREDENTIALS), "approve")
    lose(p, Queue.EXECUTION.value)
    p.clock.advance(dt.timedelta(minutes=21))
    sweep_stalled(p.services)
    run = p.run()
    assert run.state is RunState.FAILED
    assert all(r.sealed_assertion is None for r in run.requests)
    assert p.arm.resource.executed == []


def test_a_run_moving_normally_is_left_alone() -> None:
    p = new("review")
    p.drain()
    p.clock.advance(dt.timedelta(minutes=5))
    assert sweep_stalled(p.services) == 0
    assert p.run().state is RunState.AWAITING_CONSENT


def test_the_sweeper_sees_every_open_run_however_many_there_are() -> None:
    p = Pipeline(plan_book("autonomous", ["vm.read_instance_view"]), agent_can={READ})
    for i in range(600):
        p.send_alert(alert(alert_id=f"a{i}", resource=f"{VM_IN_RG}/vm-{i:03d}"), message_id=f"alert-{i}")
    p.drain(limit=5000, skip={Queue.ATTEMPT.value})
    lose(p, Queue.ATTEMPT.value)
    p.clock.advance(dt.timedelta(minutes=11))
    assert sweep_stalled(p.services) == 600
    p.drain(limit=5000)
    assert {r.state for r in p.store.all_runs()} == {RunState.SUCCEEDED}


def test_a_run_that_ended_while_its_host_died_is_moved_to_the_ended_index() -> None:
    p = new()
    p.drain()
    run = p.run()
    assert run.state is RunState.SUCCEEDED
    p.store._open[run.run_id] = run.created_at  # its host died after the commit, before the index moved
    assert [o.run_id for o in p.store.open_runs()] == [run.run_id]
    assert sweep_stalled(p.services) == 1
    assert p.store.open_runs() == []
    assert [s.run_id for s in p.store.list_runs(RunState.SUCCEEDED).runs] == [run.run_id]


def test_an_open_index_entry_whose_run_was_never_written_is_dropped_after_an_hour() -> None:
    p = new()
    p.store._open["never-written"] = p.clock.now()
    p.clock.advance(dt.timedelta(minutes=30))
    sweep_stalled(p.services)
    assert "never-written" in {o.run_id for o in p.store.open_runs()}
    p.clock.advance(dt.timedelta(minutes=31))
    sweep_stalled(p.services)
    assert "never-written" not in {o.run_id for o in p.store.open_runs()}
