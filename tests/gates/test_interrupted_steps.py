"""A host that dies while a step is in flight: the next delivery of the step's message (or the stall
sweeper's, when that message is gone too) finishes what can be finished safely. A read, claimed only with
its outcome, left nothing behind and runs again; a
write ARM accepted is followed to ARM's own outcome; a write whose answer never came is never repeated
and the run says, first, that its outcome is unknown and which id finds it in ARM's activity log."""

from __future__ import annotations

import datetime as dt

import pytest

from gates.relay import sweep_stalled
from shared.core.arm_outcomes import ArmOutcome, OutcomeKind
from shared.core.model import RequestKind, RunState, StepState
from shared.core.steps import OUTCOME_UNKNOWN
from shared.topology import Queue
from tests.fakes import Delivery, HostStopped
from tests.pipeline import ALICE, Pipeline, alert, plan_book, principal_headers

READ = "Microsoft.Compute/virtualMachines/read"
RESTART = "Microsoft.Compute/virtualMachines/restart/action"


def new(agent_can: set[str] | None = None, mode: str = "autonomous") -> Pipeline:
    p = Pipeline(plan_book(mode, ["vm.read_instance_view", "vm.restart"]),
                 agent_can={READ, RESTART} if agent_can is None else agent_can, user_can={READ, RESTART})
    p.send_alert(alert())
    return p


def kill_host(p: Pipeline, queue: str, point: str, *, step: int) -> Delivery:
    """Run `queue`'s next message for `step` until the host dies at `point`; the message comes back."""
    p.drain(skip={queue})
    while True:
        delivery = p.bus.take(queue)
        assert delivery is not None, f"no {queue} message for step {step}"
        if delivery.message.body.get("step") == step:
            break
        p.deliver(delivery)
        p.drain(skip={queue})
    p.arm.stop_host = point
    with pytest.raises(HostStopped):
        p.queue_functions[queue](p.sb_message(delivery))
    return delivery


def redeliver(p: Pipeline, delivery: Delivery) -> None:
    """The lock of the dead host's delivery ran out: the broker hands the message out again."""
    p.bus.put_back(delivery)
    p.drain()


def test_a_read_whose_host_died_runs_again_and_the_run_succeeds() -> None:
    p = new()
    redeliver(p, kill_host(p, Queue.ATTEMPT.value, "before_answer", step=0))
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.calls.count(("vm.read_instance_view", "agent")) == 2
    assert p.arm.resource.executed == [("vm.restart", "agent")]
    assert p.events().count("action_attempted") == 2  # the read, once (its dead host wrote nothing), the write


def test_a_read_whose_host_died_left_its_step_as_it_was() -> None:
    p = new()
    kill_host(p, Queue.ATTEMPT.value, "before_answer", step=0)
    assert p.run().steps[0].state is StepState.PENDING
    assert p.run().steps[0].claim_message_id is None


def test_a_read_run_again_is_sent_under_a_new_client_request_id() -> None:
    p = new()
    redeliver(p, kill_host(p, Queue.ATTEMPT.value, "before_answer", step=0))
    first, again, _restart = p.arm.client_request_ids
    assert first
    assert again
    assert first != again


def test_a_write_arm_accepted_is_followed_to_its_end_by_the_redelivery_not_sent_again() -> None:
    p = new()
    delivery = kill_host(p, Queue.ATTEMPT.value, "after_accept", step=1)
    step = p.run().steps[1]
    assert step.operation is not None
    assert step.operation.async_operation
    redeliver(p, delivery)
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vm.restart", "agent")]
    assert p.arm.calls[-1] == ("resume", "agent")
    assert [e for e in p.events() if e.startswith("action_")] == [
        "action_attempted", "action_executed", "action_attempted", "action_accepted", "action_resumed",
        "action_executed"]


def test_an_accepted_write_that_arm_then_failed_fails_the_run_with_arms_reason() -> None:
    p = new()
    delivery = kill_host(p, Queue.ATTEMPT.value, "after_accept", step=1)
    p.arm.operations = {url: ArmOutcome(OutcomeKind.FAILED, 200, "VMAgentStatusCommunicationError", "no agent")
                        for url in p.arm.operations}
    redeliver(p, delivery)
    run = p.run()
    assert run.state is RunState.FAILED
    assert run.steps[1].outcome.startswith("VMAgentStatusCommunicationError")
    assert "action_interrupted" not in p.events()


def test_a_write_with_no_answer_is_not_repeated_and_the_run_ends_outcome_unknown() -> None:
    p = new()
    redeliver(p, kill_host(p, Queue.ATTEMPT.value, "before_answer", step=1))
    run = p.run()
    assert run.state is RunState.FAILED
    assert run.steps[1].outcome == OUTCOME_UNKNOWN
    assert p.arm.resource.executed == [("vm.restart", "agent")]  # ARM did act, once; nobody knows here
    assert "outcome unknown, not repeated" in run.outcome


def test_the_correlation_id_of_an_unanswered_write_is_the_one_the_app_sent_arm() -> None:
    p = new()
    redeliver(p, kill_host(p, Queue.ATTEMPT.value, "before_answer", step=1))
    sent = p.arm.client_request_ids[-1]
    assert sent is not None
    assert p.run().steps[1].client_request_id == sent
    assert sent in p.run().outcome


def run_page(p: Pipeline, run_id: str) -> str:
    response = p.http("GET", "runs/{run_id}", f"https://gates.example/api/runs/{run_id}",
                      headers={**principal_headers(ALICE), "Accept": "text/html"}, route_params={"run_id": run_id})
    assert response.status_code == 200
    return response.get_body().decode()


def test_the_run_page_says_first_that_the_outcome_is_unknown_with_the_correlation_id() -> None:
    p = new()
    redeliver(p, kill_host(p, Queue.ATTEMPT.value, "before_answer", step=1))
    run = p.run()
    html = run_page(p, run.run_id)
    body = html[html.index("<body"):]
    assert body.index("Outcome unknown") < body.index("<h1")
    assert str(run.steps[1].client_request_id) in body[:body.index("<h1")]


def test_the_run_ended_mail_says_the_outcome_is_unknown_with_the_correlation_id() -> None:
    p = new()
    redeliver(p, kill_host(p, Queue.ATTEMPT.value, "before_answer", step=1))
    [ended] = [m for m in p.notifier.sent if "Run failed" in m["subject"]]
    assert "outcome unknown" in ended["subject"]
    assert ended["text"].startswith("Outcome unknown: step 2 (vm.restart)")
    assert str(p.run().steps[1].client_request_id) in ended["text"].split("\n\n")[0]
    assert ended["html"].index("Outcome unknown") < ended["html"].index("<h1")


def test_a_run_that_succeeded_shows_no_outcome_unknown_banner() -> None:
    p = new()
    p.drain()
    run = p.run()
    assert run.state is RunState.SUCCEEDED
    assert "Outcome unknown" not in run_page(p, run.run_id)


def test_a_persons_write_arm_accepted_is_followed_with_the_agents_identity_and_the_grant_is_gone() -> None:
    p = new(agent_can={READ})
    p.drain()
    p.post_decision(p.pending_request(RequestKind.CREDENTIALS), "approve")
    delivery = kill_host(p, Queue.EXECUTION.value, "after_accept", step=1)
    assert all(r.sealed_assertion is None for r in p.run().requests)  # discarded when ARM accepted
    exchanges = len(p.tokens.exchanges)
    redeliver(p, delivery)
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vm.restart", "user:alice")]
    assert p.arm.calls[-1] == ("resume", "agent")
    assert len(p.tokens.exchanges) == exchanges  # no on-behalf-of exchange to follow it
    executed = [e for e in p.store.list_audit(p.run().run_id) if e.event == "action_executed"][-1]
    assert executed.actor.name == "alice@contoso.test"  # ARM ran it as her, whoever followed it


def test_a_persons_write_with_no_answer_ends_outcome_unknown_and_drops_the_grant() -> None:
    p = new(agent_can={READ})
    p.drain()
    p.post_decision(p.pending_request(RequestKind.CREDENTIALS), "approve")
    redeliver(p, kill_host(p, Queue.EXECUTION.value, "before_answer", step=1))
    run = p.run()
    assert (run.state, run.steps[1].outcome) == (RunState.FAILED, OUTCOME_UNKNOWN)
    assert all(r.sealed_assertion is None for r in run.requests)
    assert p.arm.resource.executed == [("vm.restart", "user:alice")]


def test_a_second_copy_of_the_message_while_the_host_lives_does_nothing() -> None:
    p = new()
    delivery = kill_host(p, Queue.ATTEMPT.value, "after_accept", step=1)
    delivery.message = type(delivery.message)(delivery.message.queue, "another-id", delivery.message.body,
                                              delivery.message.correlation_id)
    redeliver(p, delivery)
    assert p.run().steps[1].state is StepState.ATTEMPTING
    assert p.arm.calls[-1] == ("vm.restart", "agent")


# ---- the stall sweeper, when the dead host's message is gone too -------------------------------

def sweep_after_dead_letter(p: Pipeline) -> None:
    p.clock.advance(dt.timedelta(minutes=16))
    assert sweep_stalled(p.services) == 1
    p.drain()


def test_the_sweeper_sends_a_read_whose_host_died_a_new_message_and_the_run_succeeds() -> None:
    p = new()
    kill_host(p, Queue.ATTEMPT.value, "before_answer", step=0)  # and its message is dead-lettered
    sweep_after_dead_letter(p)
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.calls.count(("vm.read_instance_view", "agent")) == 2
    assert p.arm.resource.executed == [("vm.restart", "agent")]


def test_the_sweeper_has_an_accepted_write_followed_to_its_end() -> None:
    p = new()
    kill_host(p, Queue.ATTEMPT.value, "after_accept", step=1)
    sweep_after_dead_letter(p)
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vm.restart", "agent")]
    assert p.arm.calls[-1] == ("resume", "agent")


def test_the_sweeper_ends_a_write_with_no_answer_outcome_unknown() -> None:
    p = new()
    kill_host(p, Queue.ATTEMPT.value, "before_answer", step=1)
    sweep_after_dead_letter(p)
    run = p.run()
    assert (run.state, run.steps[1].outcome) == (RunState.FAILED, OUTCOME_UNKNOWN)
    assert p.arm.resource.executed == [("vm.restart", "agent")]


def test_the_dead_hosts_own_redelivery_after_a_hand_over_does_nothing() -> None:
    p = new()
    delivery = kill_host(p, Queue.ATTEMPT.value, "after_accept", step=1)
    p.clock.advance(dt.timedelta(minutes=16))
    sweep_stalled(p.services)  # the hand-over message waits in the queue
    p.bus.put_back(delivery)  # the old message turns up first after all
    p.deliver(p.bus.take(Queue.ATTEMPT.value))  # type: ignore[arg-type]
    assert p.arm.calls[-1] == ("vm.restart", "agent")  # nothing resumed by the old message
    p.drain()
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.calls.count(("resume", "agent")) == 1
