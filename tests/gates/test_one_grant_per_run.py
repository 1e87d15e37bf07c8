"""One grant per run: a person's credentials, granted once, serve every later step of the run that needs
the same permission; each step exchanges them (on-behalf-of) for its own token and discards it; the
sealed grant is revoked after the last of those steps, or when the run ends."""

from __future__ import annotations

from shared.core.arm_outcomes import ArmOutcome, OutcomeKind
from shared.core.model import RequestKind, RunState
from tests.pipeline import ALICE, Pipeline, alert, plan_book

READ = "Microsoft.Compute/virtualMachines/read"
RESTART = "Microsoft.Compute/virtualMachines/restart/action"


def two_reads(user_can: set[str] | None = None) -> Pipeline:
    p = Pipeline(plan_book("read-only", ["vm.read", "vm.read_instance_view"], rule="vm-health"), agent_can=set(),
                 user_can={READ} if user_can is None else user_can)
    p.send_alert(alert(rule="vm-health"))
    p.drain()
    return p


def credential_requests(p: Pipeline) -> int:
    return sum(1 for r in p.run().requests if r.kind is RequestKind.CREDENTIALS)


def test_a_two_read_runbook_the_agent_may_not_run_asks_for_credentials_once() -> None:
    p = two_reads()
    p.decide(RequestKind.CREDENTIALS, "approve")
    assert p.run().state is RunState.SUCCEEDED
    assert credential_requests(p) == 1
    assert [who for _, who in p.arm.resource.reads] == ["user:alice", "user:alice"]


def test_the_grant_lists_the_steps_it_covers_before_it_is_given() -> None:
    p = two_reads()
    request = p.pending_request(RequestKind.CREDENTIALS)
    assert request.steps_covered == (0, 1)
    html = p.open_page(request).get_body().decode()
    assert "used only for steps 1 and 2" in html


def test_each_covered_step_exchanges_the_grant_for_its_own_token_and_discards_it() -> None:
    p = two_reads()
    p.decide(RequestKind.CREDENTIALS, "approve")
    # One exchange when the grant is given (to check the person's own roles first), one per step.
    assert len(p.tokens.exchanges) == 1 + 2
    assert all(credential.revoked for credential in p.tokens.issued)


def test_the_sealed_grant_is_revoked_after_the_last_covered_step_only() -> None:
    p = two_reads()
    p.decide(RequestKind.CREDENTIALS, "approve")
    events = p.events()
    assert events.count("credential_revoked") == 1
    assert events.index("credential_reused") < events.index("credential_revoked")
    assert [e for e in events if e == "action_executed"] == ["action_executed"] * 2
    assert events.index("credential_revoked") > max(i for i, e in enumerate(events) if e == "action_attempted")
    assert all(r.sealed_assertion is None for r in p.run().requests)


def test_a_grant_is_revoked_when_the_run_ends_before_its_later_steps() -> None:
    p = two_reads()
    p.arm.fail_with = ArmOutcome(OutcomeKind.FAILED, 500, "InternalServerError", "step 1 fails with their token")
    p.decide(RequestKind.CREDENTIALS, "approve")
    assert p.run().state is RunState.FAILED
    assert all(r.sealed_assertion is None for r in p.run().requests)
    assert "credential_revoked" in p.events()
    assert "credential_reused" not in p.events()


def test_a_grant_covers_only_the_steps_needing_the_refused_permission() -> None:
    p = Pipeline(plan_book("review", ["vm.read_instance_view", "vm.restart"]), agent_can={READ},
                 user_can={READ, RESTART})
    p.send_alert(alert())
    p.drain()
    p.decide(RequestKind.CONSENT, "approve")
    assert p.pending_request(RequestKind.CREDENTIALS).steps_covered == (1,)
    p.decide(RequestKind.CREDENTIALS, "approve", ALICE)
    assert p.run().state is RunState.SUCCEEDED
