"""Random sequences of deliveries, duplicates, decisions, deadlines, challenges and crashes hold the
invariants: no write without consent in review mode; no action after a denial or an expiry; no
credential used after its step; every run reaches a terminal state."""

from __future__ import annotations

import copy
import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gates.relay import relay_resends, sweep_stalled
from shared.core.model import Mode, RequestKind, RequestState, RunState
from tests.pipeline import ALICE, BOB, MALLORY, Pipeline, alert, plan_book

READ = "Microsoft.Compute/virtualMachines/read"
RESTART = "Microsoft.Compute/virtualMachines/restart/action"

events = st.lists(st.sampled_from([
    "deliver", "deliver", "deliver", "duplicate", "approve", "deny", "approve_by_stranger", "tick", "late",
    "crash_next_send",
]), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mode=st.sampled_from(["review", "autonomous", "read-only"]),
    ceiling=st.sampled_from([Mode.REVIEW, Mode.AUTONOMOUS]),
    agent_can=st.sets(st.sampled_from([READ, RESTART])),
    user_can=st.sets(st.sampled_from([READ, RESTART])),
    sequence=events,
    seed=st.randoms(use_true_random=False),
)
def test_invariants_hold_for_any_sequence_of_events(mode, ceiling, agent_can, user_can, sequence, seed) -> None:
    steps = ["vm.read_instance_view"] if mode == "read-only" else ["vm.read_instance_view", "vm.restart"]
    p = Pipeline(plan_book(mode, steps), agent_can=agent_can, user_can=user_can, ceiling=ceiling)
    p.send_alert(alert())
    calls_at_end: int | None = None
    for event in sequence:
        _apply(p, event, seed)
        calls_at_end = _check(p, calls_at_end)
    # Let everything settle as the app does: deliver what is due, let every deadline pass, and let the
    # timers run (the resend relay every 30 s, the stall sweeper every 5 min).
    for _ in range(5):
        p.drain()
        p.clock.advance(dt.timedelta(hours=1))
        relay_resends(p.services)
        sweep_stalled(p.services)
    p.drain()
    _check(p, calls_at_end)
    run = p.run()
    assert run.state.is_terminal, run.state
    assert all(r.sealed_assertion is None for r in run.requests)
    assert all(c.revoked for c in p.tokens.issued)
    assert not p.dead_letters


def _apply(p: Pipeline, event: str, rng) -> None:  # type: ignore[no-untyped-def]
    due = [(q, d) for q, items in p.bus.queues.items() for d in items if p.due(d)]
    if event in ("deliver", "duplicate") and due:
        queue, delivery = rng.choice(due)
        if event == "duplicate":
            p.deliver(copy.deepcopy(delivery))
        p.bus.queues[queue].remove(delivery)
        p.deliver(delivery)
    elif event in ("approve", "deny", "approve_by_stranger") and p.store.all_runs():
        pending = p.run().pending_request()
        if pending is not None:
            user = MALLORY if event == "approve_by_stranger" else rng.choice([ALICE, BOB])
            p.post_decision(pending, "deny" if event == "deny" else "approve", user)
    elif event == "tick":
        p.clock.advance(dt.timedelta(minutes=5))
    elif event == "late":
        p.clock.advance(dt.timedelta(minutes=40))
    elif event == "crash_next_send":
        p.bus.fail_next_sends = 1


def _check(p: Pipeline, calls_at_end: int | None) -> int | None:
    if not p.store.all_runs():
        return calls_at_end
    run = p.run()
    writes = p.arm.resource.executed
    assert len(writes) <= 1, f"the write ran more than once: {writes}"
    if run.mode is Mode.REVIEW and writes:
        consent = [r for r in run.requests if r.kind is RequestKind.CONSENT]
        assert consent, "a write ran without consent"
        assert consent[0].state is RequestState.GRANTED, "a write ran without consent"
    if run.mode is Mode.READ_ONLY:
        assert not writes
    if run.state in (RunState.DENIED, RunState.EXPIRED, RunState.CANCELLED):
        if calls_at_end is None:
            return len(p.arm.calls)
        assert len(p.arm.calls) == calls_at_end, "an action ran after a denial or an expiry"
        return calls_at_end
    for step in run.steps:
        if step.state.value in ("succeeded", "failed", "skipped"):
            request = next((r for r in run.requests if r.step_index == step.index), None)
            assert request is None or request.sealed_assertion is None, "a credential outlived its step"
    return calls_at_end
