"""Reasons, quorum and everyone told, through the whole app in memory: the form, the audit, the
e-mails, and `GET` on the run."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse

import azure.functions as func

from shared.core.links import form_token
from shared.core.model import RequestKind, RunState
from tests.pipeline import ALICE, BOB, LINK_KEY, Pipeline, User, alert, plan_book, principal_headers

RESTART = "Microsoft.Compute/virtualMachines/restart/action"


def two_person(comment: str = "to-deny") -> Pipeline:
    book = json.loads(plan_book("review", ["vm.restart"]))
    book["plans"][0]["approval"] = {"quorum": 2, "comment": comment}
    book["plans"][0]["notify"] = ["oncall@contoso.test"]
    p = Pipeline(json.dumps(book), agent_can={RESTART})
    p.send_alert(alert())
    p.drain()
    return p


def say(p: Pipeline, decision: str, user: User, comment: str = "") -> func.HttpResponse:
    request = p.pending_request(RequestKind.CONSENT)
    run_id = p.run().run_id
    form = {"decision": decision, "plan_hash": request.plan_hash, "comment": comment,
            "form_token": form_token(LINK_KEY, user.object_id, request.request_id)}
    response = p.http("POST", "runs/{run_id}/requests/{request_id}", "https://gates.example/x",
                      headers={**principal_headers(user), "Content-Type": "application/x-www-form-urlencoded"},
                      route_params={"run_id": run_id, "request_id": request.request_id},
                      body=urllib.parse.urlencode(form).encode())
    p.drain()
    return response


def run_document(p: Pipeline) -> dict[str, object]:
    run_id = p.run().run_id
    response = p.http("GET", "runs/{run_id}", "https://gates.example/x", headers=principal_headers(ALICE),
                      route_params={"run_id": run_id})
    document: dict[str, object] = json.loads(response.get_body())
    return document


def closing_mails(p: Pipeline) -> list[dict[str, object]]:
    return [m for m in p.notifier.sent if "nothing more needed from you" in str(m["subject"])]


def test_a_two_person_plan_needs_two_distinct_approvers() -> None:
    p = two_person()
    assert say(p, "approve", ALICE).status_code == 200
    assert p.run().state is RunState.AWAITING_CONSENT
    again = say(p, "approve", ALICE)
    assert again.status_code == 409
    assert b"your approval already counts; 1 more needed" in again.get_body()
    assert say(p, "approve", BOB).status_code == 200
    assert p.run().state is RunState.SUCCEEDED
    assert [action for action, _ in p.arm.resource.executed] == ["vm.restart"]


def test_co_approvers_see_an_approval_and_its_reason_on_the_page() -> None:
    p = two_person()
    say(p, "approve", ALICE, "dashboards agree: the VM is hung")
    html = p.open_page(p.pending_request(RequestKind.CONSENT), BOB).get_body().decode()
    assert 'alice@contoso.test — approved at' in html
    assert "dashboards agree: the VM is hung" in html
    assert "1 of 2 approvals" in html


def test_a_deny_without_the_reason_the_plan_asks_for_is_refused() -> None:
    p = two_person()
    response = say(p, "deny", BOB)
    assert response.status_code == 400
    assert b"asks for a reason to deny" in response.get_body()
    assert p.run().state is RunState.AWAITING_CONSENT


def test_a_deny_with_a_reason_ends_the_run_and_the_reason_reaches_the_audit_the_emails_and_get() -> None:
    p = two_person()
    say(p, "approve", ALICE)
    assert say(p, "deny", BOB, "checkout sale in progress; restart after 06:00").status_code == 200
    assert p.run().state is RunState.DENIED
    reason = "checkout sale in progress; restart after 06:00"
    denied = next(e for e in p.store.list_audit(p.run().run_id) if e.event == "consent_denied")
    assert denied.details["comment"] == reason
    assert denied.details["channel"] == "browser"
    document = run_document(p)
    request = document["requests"][0]  # type: ignore[index]
    assert request["comment"] == reason
    assert [v["decision"] for v in request["votes"]] == ["approve", "deny"]
    assert reason in str(document["outcome"])
    for mail in closing_mails(p):
        assert reason in str(mail["text"])
        assert reason in str(mail["html"])


def test_the_closing_email_gives_the_deciders_reason_once_above_the_votes() -> None:
    p = two_person()
    say(p, "approve", ALICE)
    reason = "checkout sale in progress; restart after 06:00"
    say(p, "deny", BOB, reason)
    for mail in closing_mails(p):
        summary = str(mail["text"]).split("Asked:", 1)[0]  # the votes below quote each voter's own words
        assert summary.count(reason) == 1
        assert str(mail["html"]).count(reason) <= 2  # once as the reason, once in Bob's vote


def test_every_person_asked_gets_exactly_one_decided_email() -> None:
    p = two_person()
    say(p, "approve", ALICE)
    say(p, "deny", BOB, "not now")
    p.drain()
    told = [address for mail in closing_mails(p) for address in mail["to"]]  # type: ignore[attr-defined]
    assert sorted(told) == ["alice@contoso.test", "bob@contoso.test"]


def test_an_expired_request_tells_every_person_asked_once_and_watchers_hear_the_end() -> None:
    p = two_person()
    p.pass_deadline()
    told = [address for mail in closing_mails(p) for address in mail["to"]]  # type: ignore[attr-defined]
    assert sorted(told) == ["alice@contoso.test", "bob@contoso.test"]
    ended = [m for m in p.notifier.sent if "Run expired" in str(m["subject"])]
    assert [m["to"] for m in ended] == [["oncall@contoso.test"]]


def test_an_api_caller_gives_its_reason_in_json() -> None:
    p = two_person()
    request = p.pending_request(RequestKind.CONSENT)
    run_id = p.run().run_id
    body = json.dumps({"decision": "deny", "plan_hash": request.plan_hash, "comment": "from the API"}).encode()
    response = p.http("POST", "runs/{run_id}/requests/{request_id}", "https://gates.example/x",
                      headers={**principal_headers(BOB), "Authorization": "Bearer x",
                               "Content-Type": "application/json"},
                      route_params={"run_id": run_id, "request_id": request.request_id}, body=body)
    assert response.status_code == 200
    p.drain()
    denied = next(e for e in p.store.list_audit(run_id) if e.event == "consent_denied")
    assert (denied.details["comment"], denied.details["channel"]) == ("from the API", "api")


CAROL = User("ca201000-0000-4000-8000-000000000005", "carol@contoso.test", ("Gates.Approver",))


def reminding() -> Pipeline:
    book = json.loads(plan_book("review", ["vm.restart"]))
    book["plans"][0]["approval"] = {"remindAt": 0.5, "escalateTo": [{"upn": CAROL.upn, "objectId": CAROL.object_id}]}
    p = Pipeline(json.dumps(book), agent_can={RESTART})
    p.send_alert(alert())
    p.drain()
    return p


def subjects(p: Pipeline, start: str) -> list[tuple[str, list[str]]]:
    return [(str(m["subject"]), list(m["to"])) for m in p.notifier.sent  # type: ignore[call-overload]
            if str(m["subject"]).startswith(start)]


def test_a_reminder_and_an_escalation_are_sent_before_the_deadline() -> None:
    p = reminding()
    p.pass_deadline(dt.timedelta(minutes=14))
    assert subjects(p, "Reminder:") == []
    p.pass_deadline(dt.timedelta(minutes=2))
    reminders, escalations = subjects(p, "Reminder:"), subjects(p, "Escalated:")
    assert [to for _, to in reminders] == [["alice@contoso.test", "bob@contoso.test"]]
    assert "Consent needed by" in reminders[0][0]
    assert [to for _, to in escalations] == [["carol@contoso.test"]]
    assert p.run().state is RunState.AWAITING_CONSENT
    assert {"request_reminded", "request_escalated"} <= set(p.events())


def test_the_escalation_group_decides_and_every_person_asked_is_told_once() -> None:
    p = reminding()
    p.pass_deadline(dt.timedelta(minutes=16))
    assert say(p, "approve", CAROL).status_code == 200
    told = sorted(a for m in closing_mails(p) for a in m["to"])  # type: ignore[attr-defined]
    assert told == ["alice@contoso.test", "bob@contoso.test", "carol@contoso.test"]


def test_no_reminder_or_escalation_after_a_decision() -> None:
    p = reminding()
    say(p, "approve", ALICE)
    p.pass_deadline(dt.timedelta(hours=1))
    assert subjects(p, "Reminder:") == []
    assert subjects(p, "Escalated:") == []
    assert "request_reminded" not in p.events()
