"""Plans an agent proposes over HTTP: refused with a reason and nothing created, or made one run per
idempotency key that goes through the same engine, asks the people the policy trusts, and reads back."""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import replace

import pytest

from gates.proposals import bounded_result
from shared.core.arm_outcomes import ArmOutcome, OutcomeKind
from shared.core.model import CredentialSource, RequestKind, RunState
from shared.core.plans import parse_plan_book
from shared.core.proposals import idempotency_row, parse_plan, run_id_for
from tests.agents import (
    AGENT_ID,
    APP_CLIENT_ID,
    CAROL,
    OTHER_AGENT_ID,
    READ_VMSS,
    SET_CAPACITY,
    agent_pipeline,
    agent_token,
    agents_book,
    plan,
    post_plan,
    read_run,
)
from tests.pipeline import ALICE, BOB, CATALOG, MALLORY, principal_headers


def test_a_proposed_plan_becomes_a_run_awaiting_consent_with_its_status_url() -> None:
    p = agent_pipeline()
    status, body = post_plan(p, plan())
    assert status == 202
    assert body["status_url"] == f"https://gates.example/api/runs/{body['run_id']}"
    run = p.run()
    assert run.run_id == body["run_id"]
    assert run.state is RunState.AWAITING_CONSENT
    assert run.alert is None
    assert run.proposal is not None
    assert run.proposal.agent_id == AGENT_ID
    assert "plan_proposed" in p.events()


@pytest.mark.parametrize(("document", "field"), [
    ({**plan(), "steps": [{"action": "vmss.delete"}]}, "steps[0].action"),
    (plan(capacity=5000), "steps[1].parameters"),
    ({**plan(), "steps": [{"action": "vm.restart"}]}, "steps[0].action"),
    ({**plan(), "rationale": ""}, "rationale"),
    ({**plan(), "idempotency_key": 7}, "idempotency_key"),
    ({**plan(), "resource_id": "vmss-workers"}, "resource_id"),
    ({**plan(), "requester": {"object_id": "not-a-guid", "upn": "alice@contoso.test"}}, "requester.object_id"),
    ({**plan(), "colour": "red"}, "colour"),
])
def test_a_plan_that_cannot_be_read_is_refused_naming_the_field_and_nothing_is_created(document, field) -> None:
    p = agent_pipeline()
    status, body = post_plan(p, document)
    assert (status, body["field"]) == (400, field)
    assert p.store.all_runs() == []


def test_a_resource_outside_the_policys_scope_is_refused_and_nothing_is_created() -> None:
    p = agent_pipeline()
    status, body = post_plan(p, plan(resource=plan()["resource_id"].replace("rg-prod-workers", "rg-other")))
    assert (status, body["field"]) == (403, "resource_id")
    assert "outside" in body["message"]
    assert p.store.all_runs() == []


def test_an_action_the_policy_does_not_give_the_agent_is_refused() -> None:
    p = agent_pipeline()
    reads_only = parse_plan_book(agents_book(actions=("vmss.read",)), "plans.json", CATALOG)
    p.services.policy = replace(p.services.policy, plans=reads_only)
    status, body = post_plan(p, plan())
    assert (status, body["field"]) == (403, "steps[1].action")
    assert p.store.all_runs() == []


@pytest.mark.parametrize(("token", "status", "words"), [
    (agent_token(roles=()), 403, "Gates.Agent"),
    (agent_token(audience="https://management.azure.com"), 401, "another audience"),
    (agent_token(issuer="https://evil.test/v2.0"), 401, "not valid"),
    (agent_token(extra={"scp": "user_impersonation"}), 403, "person's token"),
    ("not-a-jwt", 401, "not valid"),
])
def test_an_agent_token_that_is_not_right_is_refused_and_nothing_is_created(token, status, words) -> None:
    p = agent_pipeline()
    got, body = post_plan(p, plan(), token=token)
    assert got == status
    assert words in body["message"]
    assert p.store.all_runs() == []


def test_an_agent_the_policy_does_not_name_may_propose_nothing() -> None:
    p = agent_pipeline()
    status, body = post_plan(p, plan(), token=agent_token(OTHER_AGENT_ID))
    assert status == 403
    assert "not named" in body["message"]
    assert p.store.all_runs() == []


def test_a_token_for_the_apps_api_uri_is_accepted_too() -> None:
    p = agent_pipeline()
    assert post_plan(p, plan(), token=agent_token(audience=f"api://{APP_CLIENT_ID}"))[0] == 202


def test_the_same_key_and_plan_return_the_same_run() -> None:
    p = agent_pipeline()
    first = post_plan(p, plan())
    again = post_plan(p, plan())
    assert again[0] == 200
    assert again[1]["run_id"] == first[1]["run_id"]
    assert again[1]["repeat"] is True
    assert len(p.store.all_runs()) == 1


def test_the_same_key_with_another_plan_is_a_409_and_creates_nothing_more() -> None:
    p = agent_pipeline()
    first = post_plan(p, plan(capacity=4))
    status, body = post_plan(p, plan(capacity=6))
    assert (status, body["field"]) == (409, "idempotency_key")
    assert body["run_id"] == first[1]["run_id"]
    assert len(p.store.all_runs()) == 1


def test_an_idempotency_key_belongs_to_one_agent() -> None:
    assert idempotency_row(AGENT_ID, "incident-42") != idempotency_row(OTHER_AGENT_ID, "incident-42")
    assert idempotency_row(AGENT_ID, "incident-42") == idempotency_row(AGENT_ID.upper(), "incident-42")


def test_proposals_with_one_key_at_the_same_instant_make_one_run() -> None:
    p = agent_pipeline()
    barrier = threading.Barrier(8)
    answers: list[tuple[int, dict]] = []

    def propose() -> None:
        barrier.wait()
        answers.append(post_plan(p, plan()))

    threads = [threading.Thread(target=propose) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(p.store.all_runs()) == 1
    assert {body["run_id"] for _, body in answers} == {p.run().run_id}
    assert sorted(status for status, _ in answers) == [200] * 7 + [202]


def test_a_key_whose_run_was_never_written_gets_its_run_from_the_repeat() -> None:
    """The row names the run before the run is written: a host that died between them loses nothing."""
    p = agent_pipeline()
    proposed = parse_plan(plan(), CATALOG)
    p.services.correlations.create(idempotency_row(AGENT_ID, "incident-42"), run_id_for(AGENT_ID, proposed),
                                   p.clock.now())
    status, body = post_plan(p, plan())
    assert status == 200
    assert p.run().run_id == body["run_id"]


def test_a_trusted_requester_is_asked_for_consent_and_for_credentials() -> None:
    p = agent_pipeline(agent_can={READ_VMSS}, user_can={READ_VMSS, SET_CAPACITY})
    post_plan(p, plan(requester=ALICE))
    p.drain()
    consent = p.pending_request(RequestKind.CONSENT)
    assert [a.upn for a in consent.approvers] == [ALICE.upn]
    assert p.post_decision(consent, "approve", BOB).status_code == 403  # not the one asked
    p.decide(RequestKind.CONSENT, "approve", ALICE)
    credentials = p.pending_request(RequestKind.CREDENTIALS)
    assert [a.upn for a in credentials.approvers] == [ALICE.upn]
    p.decide(RequestKind.CREDENTIALS, "approve", ALICE)
    run = p.run()
    assert run.state is RunState.SUCCEEDED
    assert run.steps[0].credential_source is CredentialSource.AGENT
    assert run.steps[1].credential_source is CredentialSource.DELEGATED
    assert p.arm.resource.executed == [("vmss.set_capacity", "user:alice")]


def test_a_requester_the_policy_does_not_trust_cannot_consent_the_approvers_are_asked() -> None:
    p = agent_pipeline(agent_can={READ_VMSS, SET_CAPACITY})
    post_plan(p, plan(requester=CAROL))
    p.drain()
    consent = p.pending_request(RequestKind.CONSENT)
    assert [a.upn for a in consent.approvers] == [ALICE.upn, BOB.upn]
    assert p.post_decision(consent, "approve", CAROL).status_code == 403
    assert any(ALICE.upn in m["to"] for m in p.notifier.sent)
    assert not any(CAROL.upn in m["to"] for m in p.notifier.sent)
    p.decide(RequestKind.CONSENT, "approve", BOB)
    assert p.run().state is RunState.SUCCEEDED
    assert p.arm.resource.executed == [("vmss.set_capacity", "agent")]


def test_an_untrusted_requester_is_still_the_one_asked_for_credentials() -> None:
    p = agent_pipeline(agent_can={READ_VMSS}, user_can={READ_VMSS, SET_CAPACITY})
    post_plan(p, plan(requester=CAROL))
    p.drain()
    p.decide(RequestKind.CONSENT, "approve", ALICE)
    credentials = p.pending_request(RequestKind.CREDENTIALS)
    assert [a.upn for a in credentials.approvers] == [CAROL.upn]
    assert p.post_decision(credentials, "approve", ALICE).status_code == 403  # alice's rights are not carol's


def test_a_plan_without_a_requester_goes_to_the_policys_approvers() -> None:
    p = agent_pipeline(agent_can={READ_VMSS})
    post_plan(p, plan(requester=None))
    p.drain()
    assert [a.upn for a in p.pending_request(RequestKind.CONSENT).approvers] == [ALICE.upn, BOB.upn]
    p.decide(RequestKind.CONSENT, "approve", ALICE)
    assert [a.upn for a in p.pending_request(RequestKind.CREDENTIALS).approvers] == [ALICE.upn, BOB.upn]


@pytest.mark.parametrize(("mode", "steps", "agent_can", "asks_consent", "asks_credentials"), [
    ("review", ["vmss.read"], {READ_VMSS}, False, False),
    ("review", ["vmss.read"], set(), False, True),
    ("review", ["vmss.set_capacity"], {SET_CAPACITY}, True, False),
    ("review", ["vmss.set_capacity"], set(), True, True),
    ("autonomous", ["vmss.read"], {READ_VMSS}, False, False),
    ("autonomous", ["vmss.read"], set(), False, True),
    ("autonomous", ["vmss.set_capacity"], {SET_CAPACITY}, False, False),
    ("autonomous", ["vmss.set_capacity"], set(), False, True),
])
def test_every_row_of_the_seeds_tables_holds_for_a_proposed_plan(mode, steps, agent_can, asks_consent,
                                                                 asks_credentials) -> None:
    p = agent_pipeline(mode, agent_can=agent_can, user_can={READ_VMSS, SET_CAPACITY})
    document = plan(steps=[{"action": a, **({"parameters": {"capacity": 4}} if a == "vmss.set_capacity" else {})}
                           for a in steps])
    post_plan(p, document)
    p.drain()
    if asks_consent:
        p.decide(RequestKind.CONSENT, "approve", ALICE)
    kinds = {r.kind for r in p.run().requests}
    assert (RequestKind.CONSENT in kinds) is asks_consent
    if asks_credentials:
        p.decide(RequestKind.CREDENTIALS, "approve", ALICE)
    assert (RequestKind.CREDENTIALS in {r.kind for r in p.run().requests}) is asks_credentials
    run = p.run()
    assert run.state is RunState.SUCCEEDED
    expected = CredentialSource.DELEGATED if asks_credentials else CredentialSource.AGENT
    assert run.steps[-1].credential_source is expected


def test_a_denial_and_its_reason_reach_the_agent() -> None:
    p = agent_pipeline(agent_can={READ_VMSS, SET_CAPACITY})
    _, body = post_plan(p, plan())
    p.drain()
    consent = p.pending_request(RequestKind.CONSENT)
    response = p.http("POST", "runs/{run_id}/requests/{request_id}", "https://gates.example/x",
                      headers={**principal_headers(ALICE), "Content-Type": "application/json",
                               "Authorization": "Bearer person"},
                      route_params={"run_id": body["run_id"], "request_id": consent.request_id},
                      body=json.dumps({"decision": "deny", "plan_hash": consent.plan_hash,
                                       "reason": "backlog is a stuck consumer; scaling hides it"}).encode())
    assert response.status_code == 200
    p.drain()
    status, view = read_run(p, body["run_id"])
    assert status == 200
    assert view["state"] == "denied"
    denial = next(d for d in view["decisions"] if d["event"] == "consent_denied")
    assert denial["reason"] == "backlog is a stuck consumer; scaling hides it"
    assert "stuck consumer" in view["outcome"]
    assert p.arm.calls == []


def test_credentials_denied_end_the_run_with_no_action_and_the_agent_reads_it() -> None:
    p = agent_pipeline(agent_can={READ_VMSS})
    _, body = post_plan(p, plan())
    p.drain()
    p.decide(RequestKind.CONSENT, "approve", ALICE)
    p.decide(RequestKind.CREDENTIALS, "deny", ALICE)
    _, view = read_run(p, body["run_id"])
    assert view["state"] == "denied"
    assert [d["event"] for d in view["decisions"]][:3] == ["consent_granted", "credential_denied", "run_ended"]
    assert p.arm.resource.executed == []


@pytest.mark.parametrize("kind", [RequestKind.CONSENT, RequestKind.CREDENTIALS])
def test_no_answer_before_the_deadline_expires_the_run(kind) -> None:
    p = agent_pipeline(agent_can={READ_VMSS})
    _, body = post_plan(p, plan())
    p.drain()
    if kind is RequestKind.CREDENTIALS:
        p.decide(RequestKind.CONSENT, "approve", ALICE)
    p.pass_deadline(dt.timedelta(hours=1))
    _, view = read_run(p, body["run_id"])
    assert view["state"] == "expired"
    assert p.arm.resource.executed == []


def test_the_agent_reads_when_its_run_ended() -> None:
    p = agent_pipeline(agent_can={READ_VMSS})
    _, body = post_plan(p, plan())
    p.drain()
    _, asking = read_run(p, body["run_id"])
    assert asking["ended_at"] is None
    p.pass_deadline(dt.timedelta(hours=1))
    _, view = read_run(p, body["run_id"])
    assert view["ended_at"] == p.run().ended_at.isoformat()  # type: ignore[union-attr]


def test_while_a_person_is_asked_the_agent_reads_the_approval_link_for_them() -> None:
    p = agent_pipeline()
    _, body = post_plan(p, plan())
    p.drain()
    _, view = read_run(p, body["run_id"])
    request = p.pending_request(RequestKind.CONSENT)
    assert view["waiting_for"] == {
        "kind": "consent", "asked_of": [ALICE.upn],
        "approval_url": f"https://gates.example/api/runs/{body['run_id']}/requests/{request.request_id}"}


def read_result(body: dict) -> dict:
    p = agent_pipeline(agent_can={READ_VMSS})
    p.arm.fail_with = ArmOutcome(OutcomeKind.SUCCEEDED, 200, body=body)
    _, proposed = post_plan(p, plan(steps=[{"action": "vmss.read"}]))
    p.drain()
    return read_run(p, proposed["run_id"])[1]["steps"][0]


def test_a_read_steps_result_reaches_the_agent_and_what_arm_returned_beside_it_does_not() -> None:
    step = read_result({"id": "/subscriptions/x/vmss-workers", "name": "vmss-workers", "status": "Succeeded",
                        "properties": {"osProfile": {"adminPassword": "hunter2"}}})
    assert step["state"] == "succeeded"
    assert step["result"] == {"id": "/subscriptions/x/vmss-workers", "name": "vmss-workers", "status": "Succeeded"}
    assert "hunter2" not in json.dumps(step)


def test_a_results_secret_looking_fields_are_redacted_and_a_large_one_is_bounded() -> None:
    assert bounded_result({"name": "x", "clientSecret": "s", "nested": [{"accessToken": "t"}]}) == {
        "name": "x", "clientSecret": "(redacted)", "nested": [{"accessToken": "(redacted)"}]}
    large = bounded_result({"blob": "y" * 50_000})
    assert large["truncated"] is True
    assert len(json.dumps(large)) < 5000


def test_an_agent_reads_only_its_own_runs() -> None:
    p = agent_pipeline()
    _, body = post_plan(p, plan())
    assert read_run(p, body["run_id"], token=agent_token(OTHER_AGENT_ID))[0] == 404
    assert read_run(p, body["run_id"], token=agent_token(roles=()))[0] == 403


def test_a_person_reads_a_proposed_run_as_any_other() -> None:
    p = agent_pipeline()
    _, body = post_plan(p, plan())
    response = p.http("GET", "runs/{run_id}", "https://gates.example/x", headers=principal_headers(BOB),
                      route_params={"run_id": body["run_id"]})
    document = json.loads(response.get_body())
    assert document["proposal"]["agent"] == "sre-agent"
    assert document["alert_rule"] is None
    html = p.http("GET", "runs/{run_id}", "https://gates.example/x",
                  headers={**principal_headers(BOB), "Accept": "text/html"}, route_params={"run_id": body["run_id"]})
    assert b"queue backlog" in html.get_body()
    assert p.http("GET", "runs/{run_id}", "https://gates.example/x", headers=principal_headers(MALLORY),
                  route_params={"run_id": body["run_id"]}).status_code == 403


def test_checking_a_plan_says_what_would_happen_and_creates_nothing() -> None:
    p = agent_pipeline()
    status, body = post_plan(p, plan(requester=CAROL), route="plans/check")
    assert status == 200
    assert body["decision"] == "consent"
    assert body["consent_from"] == [ALICE.upn, BOB.upn]
    assert body["credentials"]["asked_of"] == [CAROL.upn]
    assert post_plan(p, plan(resource=plan()["resource_id"].replace("rg-prod-workers", "rg-x")),
                     route="plans/check")[1]["decision"] == "refuse"
    assert p.store.all_runs() == []
    assert p.bus.queues == {} or all(not q for q in p.bus.queues.values())


def test_the_agent_may_withdraw_its_plan_while_a_person_is_asked() -> None:
    p = agent_pipeline()
    _, body = post_plan(p, plan())
    p.drain()
    response = p.http("POST", "runs/{run_id}/cancel", "https://gates.example/x",
                      headers={"Authorization": f"Bearer {agent_token()}"}, route_params={"run_id": body["run_id"]},
                      body=b'{"reason": "the backlog cleared"}')
    assert response.status_code == 200
    assert p.run().state is RunState.CANCELLED
    assert p.post_decision(p.run().requests[0], "approve", ALICE).status_code == 409
    again = p.http("POST", "runs/{run_id}/cancel", "https://gates.example/x",
                   headers={"Authorization": f"Bearer {agent_token()}"}, route_params={"run_id": body["run_id"]})
    assert again.status_code == 200  # withdrawing twice is withdrawing once


def test_a_plan_already_acting_or_ended_cannot_be_withdrawn() -> None:
    p = agent_pipeline(agent_can={READ_VMSS, SET_CAPACITY})
    _, body = post_plan(p, plan())
    p.drain()
    p.decide(RequestKind.CONSENT, "approve", ALICE)
    response = p.http("POST", "runs/{run_id}/cancel", "https://gates.example/x",
                      headers={"Authorization": f"Bearer {agent_token()}"}, route_params={"run_id": body["run_id"]})
    assert response.status_code == 409
    assert p.run().state is RunState.SUCCEEDED


def test_the_answer_to_a_proposal_carries_the_link_of_the_person_asked() -> None:
    p = agent_pipeline()
    _, body = post_plan(p, plan())
    request = p.pending_request(RequestKind.CONSENT)
    assert body["waiting_for"]["asked_of"] == [ALICE.upn]
    assert body["waiting_for"]["approval_url"].endswith(f"/requests/{request.request_id}")
    p.drain()  # the consent gate finds the request open and asks nothing twice
    assert len([r for r in p.run().requests if r.kind is RequestKind.CONSENT]) == 1
    assert len([m for m in p.notifier.sent if "Consent needed" in m["subject"]]) == 1
