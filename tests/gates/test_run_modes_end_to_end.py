"""Every row of the seed's read-only and write tables, and the denial paths, through the real gates."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.core.model import Mode, RequestKind, RunState
from tests.pipeline import ALICE, BOB, Pipeline, alert, plan_book

READ = "Microsoft.Compute/virtualMachines/read"
RESTART = "Microsoft.Compute/virtualMachines/restart/action"


def pipeline(mode: str, steps: list[str], *, agent_can: set[str], ceiling: Mode = Mode.AUTONOMOUS) -> Pipeline:
    p = Pipeline(plan_book(mode, steps), agent_can=agent_can, user_can={READ, RESTART}, ceiling=ceiling)
    p.send_alert(alert())
    p.drain()
    return p


def asked(p: Pipeline, kind: RequestKind) -> bool:
    return any(r.kind is kind for r in p.run().requests)


# (action kind, agent has permission, mode) -> consent asked, credentials asked, identity that acted
SEED_ROWS = [
    pytest.param("read", True, "review", False, False, "agent", id="read-permitted-review"),
    pytest.param("read", False, "review", False, True, "user:alice", id="read-unpermitted-review"),
    pytest.param("read", True, "autonomous", False, False, "agent", id="read-permitted-autonomous"),
    pytest.param("read", False, "autonomous", False, True, "user:alice", id="read-unpermitted-autonomous"),
    pytest.param("write", True, "review", True, False, "agent", id="write-permitted-review"),
    pytest.param("write", False, "review", True, True, "user:alice", id="write-unpermitted-review"),
    pytest.param("write", True, "autonomous", False, False, "agent", id="write-permitted-autonomous"),
    pytest.param("write", False, "autonomous", False, True, "user:alice", id="write-unpermitted-autonomous"),
]


@pytest.mark.parametrize(("kind", "agent_permitted", "mode", "consent", "credentials", "actor"), SEED_ROWS)
def test_seed_table_row(kind: str, agent_permitted: bool, mode: str, consent: bool, credentials: bool,
                        actor: str) -> None:
    action, permission = ("vm.read_instance_view", READ) if kind == "read" else ("vm.restart", RESTART)
    p = pipeline(mode, [action], agent_can={permission} if agent_permitted else set())
    assert asked(p, RequestKind.CONSENT) is consent
    if consent:
        p.decide(RequestKind.CONSENT, "approve")
    assert asked(p, RequestKind.CREDENTIALS) is credentials
    if credentials:
        p.decide(RequestKind.CREDENTIALS, "approve")
    run = p.run()
    assert run.state is RunState.SUCCEEDED
    done = p.arm.resource.executed if kind == "write" else p.arm.resource.reads
    assert done == [(action, actor)]
    events = p.events()
    assert events[-1] == "run_ended"
    if credentials:
        assert events.index("credential_granted") < events.index("credential_revoked")
        assert all(c.revoked for c in p.tokens.issued)


def test_consent_denied_ends_the_run_with_no_action() -> None:
    p = pipeline("review", ["vm.restart"], agent_can={RESTART})
    p.decide(RequestKind.CONSENT, "deny")
    assert p.run().state is RunState.DENIED
    assert p.arm.calls == []
    assert "consent_denied" in p.events()


def test_credentials_denied_ends_the_run_with_no_action() -> None:
    p = pipeline("review", ["vm.restart"], agent_can=set())
    p.decide(RequestKind.CONSENT, "approve")
    p.decide(RequestKind.CREDENTIALS, "deny")
    assert p.run().state is RunState.DENIED
    assert p.arm.resource.executed == []
    assert p.tokens.exchanges == []


def test_consent_not_given_in_time_expires_the_run() -> None:
    p = pipeline("review", ["vm.restart"], agent_can={RESTART})
    p.pass_deadline(dt.timedelta(minutes=31))
    run = p.run()
    assert run.state is RunState.EXPIRED
    assert p.arm.calls == []
    assert "consent_expired" in p.events()


def test_credentials_not_granted_in_time_expire_the_run() -> None:
    p = pipeline("review", ["vm.restart"], agent_can=set())
    p.decide(RequestKind.CONSENT, "approve")
    p.pass_deadline(dt.timedelta(minutes=16))
    assert p.run().state is RunState.EXPIRED
    assert p.arm.resource.executed == []
    assert "credential_expired" in p.events()


def test_a_deadline_message_after_a_decision_changes_nothing() -> None:
    p = pipeline("review", ["vm.restart"], agent_can={RESTART})
    p.decide(RequestKind.CONSENT, "approve")
    p.pass_deadline(dt.timedelta(hours=2))
    assert p.run().state is RunState.SUCCEEDED


def test_read_only_plan_in_review_mode_asks_no_consent() -> None:
    p = pipeline("read-only", ["vm.read", "vm.read_instance_view"], agent_can={READ})
    assert not asked(p, RequestKind.CONSENT)
    assert p.run().state is RunState.SUCCEEDED
    assert "consent_not_needed" in p.events()


def test_read_only_steps_in_a_review_plan_never_ask_consent_on_their_own() -> None:
    p = pipeline("review", ["vm.read"], agent_can={READ})
    assert not asked(p, RequestKind.CONSENT)
    assert p.run().state is RunState.SUCCEEDED


def test_plan_mixing_read_and_write_asks_consent_once_then_elevates_only_the_write() -> None:
    p = pipeline("review", ["vm.read_instance_view", "vm.restart"], agent_can={READ})
    p.decide(RequestKind.CONSENT, "approve")
    credential_requests = [r for r in p.run().requests if r.kind is RequestKind.CREDENTIALS]
    assert [r.step_index for r in credential_requests] == [1]
    p.decide(RequestKind.CREDENTIALS, "approve")
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.reads == [("vm.read_instance_view", "agent")]
    assert p.arm.resource.executed == [("vm.restart", "user:alice")]
    assert [r.kind for r in p.run().requests].count(RequestKind.CONSENT) == 1


def test_autonomous_plan_under_a_review_ceiling_asks_consent() -> None:
    p = pipeline("autonomous", ["vm.restart"], agent_can={RESTART}, ceiling=Mode.REVIEW)
    run = p.run()
    assert run.mode is Mode.REVIEW
    assert run.requested_mode is Mode.AUTONOMOUS
    assert asked(p, RequestKind.CONSENT)
    assert p.arm.calls == []
    assert "autonomy_capped" in p.events()


def test_autonomous_consent_is_recorded_as_the_response_plans() -> None:
    p = pipeline("autonomous", ["vm.restart"], agent_can={RESTART})
    implicit = next(e for e in p.store.list_audit(p.run().run_id) if e.event == "consent_implicit")
    assert implicit.actor.kind == "plan"
    assert implicit.actor.id == "plan@v7"


def test_a_failure_that_is_not_a_security_challenge_fails_without_asking_for_credentials() -> None:
    from shared.core.arm_outcomes import ArmOutcome, OutcomeKind

    p = Pipeline(plan_book("autonomous", ["vm.restart"]), agent_can={RESTART})
    p.arm.fail_with = ArmOutcome(OutcomeKind.FAILED, 409, "ScopeLocked", "locked")
    p.send_alert(alert())
    p.drain()
    assert p.run().state is RunState.FAILED
    assert not asked(p, RequestKind.CREDENTIALS)


def test_a_grant_by_an_approver_without_the_permission_is_refused_naming_it() -> None:
    p = Pipeline(plan_book("autonomous", ["vm.restart"]), agent_can=set(), user_can=set())
    p.arm.users_can = {"user:alice": {READ}, "user:bob": {RESTART}}
    p.send_alert(alert())
    p.drain()
    response = p.post_decision(p.pending_request(RequestKind.CREDENTIALS), "approve", ALICE)
    assert response.status_code == 403
    assert RESTART in response.get_body().decode()
    p.drain()
    assert p.run().state is RunState.AWAITING_CREDENTIALS
    assert p.run().pending_request() is not None
    assert p.arm.calls == [("vm.restart", "agent")]  # only the agent's own attempt; nothing as alice
    assert "credential_grant_refused" in p.events()


def test_the_run_succeeds_when_a_second_approver_with_the_permission_grants() -> None:
    p = Pipeline(plan_book("autonomous", ["vm.restart"]), agent_can=set(), user_can=set())
    p.arm.users_can = {"user:alice": {READ}, "user:bob": {RESTART}}
    p.send_alert(alert())
    p.drain()
    request = p.pending_request(RequestKind.CREDENTIALS)
    assert p.post_decision(request, "approve", ALICE).status_code == 403
    assert p.post_decision(request, "approve", BOB).status_code == 200
    p.drain()
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vm.restart", "user:bob")]


def test_the_credential_page_says_up_front_when_the_viewer_cannot_do_the_step() -> None:
    p = Pipeline(plan_book("autonomous", ["vm.restart"]), agent_can=set(), user_can=set())
    p.arm.users_can = {"user:alice": {READ}}
    p.send_alert(alert())
    p.drain()
    page = p.open_page(p.pending_request(RequestKind.CREDENTIALS), ALICE).get_body().decode()
    assert f"lack {RESTART}" in page


def test_a_refused_on_behalf_of_exchange_ends_the_run_with_no_action() -> None:
    p = Pipeline(plan_book("autonomous", ["vm.restart"]), agent_can=set(), user_can={RESTART})
    p.tokens.refuse_with = "interaction_required: AADSTS50076: multi-factor authentication required"
    p.send_alert(alert())
    p.drain()
    p.decide(RequestKind.CREDENTIALS, "approve")
    run = p.run()
    assert run.state is RunState.FAILED
    assert p.arm.resource.executed == []
    assert all(r.sealed_assertion is None for r in run.requests)


def test_approvers_are_emailed_a_link_and_told_how_the_run_ended() -> None:
    p = pipeline("review", ["vm.restart"], agent_can={RESTART})
    request_mail = p.notifier.sent[0]
    assert set(request_mail["to"]) == {"alice@contoso.test", "bob@contoso.test"}
    assert "/api/runs/" in request_mail["text"]
    assert f"/requests/{p.run().requests[0].request_id}" in request_mail["text"]
    p.decide(RequestKind.CONSENT, "approve", ALICE)
    assert "succeeded" in p.notifier.sent[-1]["subject"]


def test_a_step_run_with_delegated_credentials_is_recorded_as_that_persons() -> None:
    p = pipeline("review", ["vm.restart"], agent_can=set())
    p.decide(RequestKind.CONSENT, "approve")
    p.decide(RequestKind.CREDENTIALS, "approve", ALICE)
    executed = next(e for e in p.store.list_audit(p.run().run_id) if e.event == "action_executed")
    assert executed.actor.id == ALICE.object_id
    assert executed.details["identity"] == "delegated"


def test_a_grant_whose_sign_in_expired_before_use_is_asked_again_once() -> None:
    p = Pipeline(plan_book("autonomous", ["vm.restart"]), agent_can=set(), user_can={RESTART})
    p.tokens.refuse_with = "invalid_grant: AADSTS500133: Assertion is not within its valid time range."
    p.send_alert(alert())
    p.drain()
    p.decide(RequestKind.CREDENTIALS, "approve")
    assert p.run().state is RunState.AWAITING_CREDENTIALS
    assert "credential_stale" in p.events()
    p.tokens.refuse_with = None
    p.decide(RequestKind.CREDENTIALS, "approve")
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vm.restart", "user:alice")]


def test_a_grant_stale_twice_ends_the_run_with_no_action() -> None:
    p = Pipeline(plan_book("autonomous", ["vm.restart"]), agent_can=set(), user_can={RESTART})
    p.tokens.refuse_with = "invalid_grant: AADSTS500133: Assertion is not within its valid time range."
    p.send_alert(alert())
    p.drain()
    p.decide(RequestKind.CREDENTIALS, "approve")
    p.decide(RequestKind.CREDENTIALS, "approve")
    assert p.run().state is RunState.FAILED
    assert p.arm.resource.executed == []
