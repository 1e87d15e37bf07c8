"""Links identify, never authorise; GET changes nothing; decisions are POSTs by authorised people,
bound to the plan they saw; first decision wins; expired requests refuse; no token at rest."""

from __future__ import annotations

import datetime as dt

from shared.core.model import RequestKind, RunState
from tests.pipeline import ALICE, BOB, MALLORY, Pipeline, alert, plan_book, principal_headers, user_token

RESTART = "Microsoft.Compute/virtualMachines/restart/action"


def waiting_for_consent() -> Pipeline:
    p = Pipeline(plan_book("review", ["vm.restart"]), agent_can=set(), user_can={RESTART})
    p.send_alert(alert())
    p.drain()
    return p


def test_opening_the_link_changes_nothing() -> None:
    p = waiting_for_consent()
    before = p.store.raw_rows()
    for _ in range(3):
        assert p.open_page(p.pending_request(RequestKind.CONSENT)).status_code == 200
    assert p.store.raw_rows() == before


def test_the_page_shows_the_plan_and_a_form_to_an_approver() -> None:
    p = waiting_for_consent()
    html = p.open_page(p.pending_request(RequestKind.CONSENT)).get_body().decode()
    assert "vm-web-01" in html
    assert "restart" in html
    assert 'method="post"' in html


def test_a_request_id_under_another_run_is_not_found() -> None:
    p = waiting_for_consent()
    request = p.pending_request(RequestKind.CONSENT)
    response = p.http("GET", "runs/{run_id}/requests/{request_id}", "https://x", headers=principal_headers(ALICE),
                      route_params={"run_id": "some-other-run", "request_id": request.request_id})
    assert response.status_code == 404


def test_a_signed_in_person_without_a_gates_role_cannot_see_a_request() -> None:
    p = waiting_for_consent()
    assert p.open_page(p.pending_request(RequestKind.CONSENT), MALLORY).status_code == 403


def test_the_link_carries_nothing_secret() -> None:
    p = waiting_for_consent()
    link = next(word for word in p.notifier.sent[0]["text"].split() if "/requests/" in word)
    assert link == f"https://gates.example/api/runs/{p.run().run_id}/requests/{p.run().requests[0].request_id}"


def test_an_anonymous_caller_sees_nothing() -> None:
    p = waiting_for_consent()
    request = p.pending_request(RequestKind.CONSENT)
    run_id = p.run().run_id
    response = p.http("GET", "runs/{run_id}/requests/{request_id}", "https://x",
                      route_params={"run_id": run_id, "request_id": request.request_id})
    assert response.status_code == 401


def test_a_signed_in_person_who_is_not_an_approver_cannot_decide() -> None:
    p = waiting_for_consent()
    response = p.post_decision(p.pending_request(RequestKind.CONSENT), "approve", MALLORY)
    assert response.status_code == 403
    assert p.run().state is RunState.AWAITING_CONSENT


def test_a_form_issued_to_someone_else_is_refused() -> None:
    p = waiting_for_consent()
    from shared.core.links import form_token
    from tests.pipeline import LINK_KEY

    request = p.pending_request(RequestKind.CONSENT)
    response = p.post_decision(request, "approve", BOB, token=form_token(LINK_KEY, ALICE.object_id,
                                                                          request.request_id))
    assert response.status_code == 403
    assert p.run().state is RunState.AWAITING_CONSENT


def test_a_decision_on_a_plan_other_than_the_one_seen_is_refused() -> None:
    p = waiting_for_consent()
    response = p.post_decision(p.pending_request(RequestKind.CONSENT), "approve", plan_hash="f" * 64)
    assert response.status_code == 409
    assert p.run().state is RunState.AWAITING_CONSENT


def test_the_first_decision_wins() -> None:
    p = waiting_for_consent()
    request = p.pending_request(RequestKind.CONSENT)
    assert p.post_decision(request, "deny", BOB).status_code == 200
    second = p.post_decision(request, "approve", ALICE)
    assert second.status_code == 409
    assert b"bob@contoso.test" in second.get_body()
    assert p.run().state is RunState.DENIED


def test_an_expired_request_refuses_a_decision() -> None:
    p = waiting_for_consent()
    request = p.pending_request(RequestKind.CONSENT)
    p.clock.advance(dt.timedelta(minutes=31))
    assert p.post_decision(request, "approve").status_code == 410
    assert p.arm.calls == []


def test_granting_credentials_without_a_sign_in_token_is_refused() -> None:
    p = waiting_for_consent()
    p.decide(RequestKind.CONSENT, "approve")
    request = p.pending_request(RequestKind.CREDENTIALS)
    response = p.post_decision(request, "approve", headers={"X-MS-TOKEN-AAD-ACCESS-TOKEN": ""})
    assert response.status_code == 401
    assert p.run().state is RunState.AWAITING_CREDENTIALS


def test_no_plaintext_token_is_at_rest_in_the_store_or_in_a_queue_message() -> None:
    p = waiting_for_consent()
    p.decide(RequestKind.CONSENT, "approve")
    token = user_token(ALICE, marker="SECRET-user-assertion")
    p.post_decision(p.pending_request(RequestKind.CREDENTIALS), "approve",
                    headers={"X-MS-TOKEN-AAD-ACCESS-TOKEN": token})
    granted = next(r for r in p.run().requests if r.kind is RequestKind.CREDENTIALS)
    assert granted.sealed_assertion
    assert token not in granted.sealed_assertion
    assert token not in p.store.raw_rows()
    assert all(token not in str(m.body) for m in p.bus.sent)
    p.drain()
    assert p.run().state is RunState.SUCCEEDED
    assert token not in p.store.raw_rows()
    assert all(r.sealed_assertion is None for r in p.run().requests)


def test_no_token_or_form_token_reaches_a_log_line(caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("DEBUG")
    p = waiting_for_consent()
    p.decide(RequestKind.CONSENT, "approve")
    token = user_token(ALICE, marker="SECRET-user-assertion")
    p.post_decision(p.pending_request(RequestKind.CREDENTIALS), "approve",
                    headers={"X-MS-TOKEN-AAD-ACCESS-TOKEN": token})
    p.drain()
    from shared.core.links import form_token
    from tests.pipeline import LINK_KEY

    signatures = [form_token(LINK_KEY, ALICE.object_id, r.request_id) for r in p.run().requests]
    logged = caplog.text + " ".join(str(getattr(r, "custom_dimensions", "")) for r in caplog.records)
    assert token not in logged
    assert all(s not in logged for s in signatures)


def test_status_needs_a_reader_or_approver_role() -> None:
    p = waiting_for_consent()
    run_id = p.run().run_id
    denied = p.http("GET", "runs/{run_id}", "https://x", headers=principal_headers(MALLORY),
                    route_params={"run_id": run_id})
    allowed = p.http("GET", "runs/{run_id}", "https://x", headers=principal_headers(ALICE),
                     route_params={"run_id": run_id})
    assert denied.status_code == 403
    assert allowed.status_code == 200


def test_alert_text_is_escaped_in_the_email_and_the_page() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"], rule="<script>x</script>"), agent_can=set())
    p.send_alert(alert(rule="<script>x</script>"))
    p.drain()
    assert "<script>" not in p.notifier.sent[0]["html"]
    assert b"<script>" not in p.open_page(p.pending_request(RequestKind.CONSENT)).get_body()


def test_granting_with_a_sign_in_token_about_to_expire_is_refused() -> None:
    p = waiting_for_consent()
    p.decide(RequestKind.CONSENT, "approve")
    stale = user_token(ALICE, expires=p.clock.now() + dt.timedelta(seconds=30))
    response = p.post_decision(p.pending_request(RequestKind.CREDENTIALS), "approve",
                               headers={"X-MS-TOKEN-AAD-ACCESS-TOKEN": stale})
    assert response.status_code == 401
    assert b"sign in again" in response.get_body()
    assert p.run().state is RunState.AWAITING_CREDENTIALS


def test_an_approver_named_by_object_id_is_not_matched_by_a_reused_sign_in_name() -> None:
    import json as _json

    book = _json.loads(plan_book("review", ["vm.restart"]))
    book["plans"][0]["approvers"] = [{"upn": "alice@contoso.test", "objectId": "00000000-0000-4000-8000-00000000a11c"}]
    p = Pipeline(_json.dumps(book), agent_can={RESTART}, user_can={RESTART})
    p.send_alert(alert())
    p.drain()
    # The real alice signs in with that name, but she is not the object the plan names.
    response = p.post_decision(p.pending_request(RequestKind.CONSENT), "approve", ALICE)
    assert response.status_code == 403
    assert p.notifier.sent[0]["to"] == ["alice@contoso.test"]
