"""Approvals people trust, on the local runtime: a two-person plan, a deny with its reason reaching the
audit, the e-mails and `GET`, a reminder and an escalation before the deadline and none after a
decision, one "decided" e-mail per person asked, and one credential grant for a two-read runbook."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
import requests

from local_azure import scenario
from local_azure.stack import LocalStack
from tests.e2e.conftest import App, start_app
from tests.e2e.journeys import AGENT, ALICE, Journey

pytestmark = pytest.mark.e2e

BOB = "bob@contoso.test"
LEAD = "lead@contoso.test"
CONSENT_SECONDS = 18.0  # GATES_CONSENT_TIMEOUT_MINUTES=0.3; the plan reminds at half of it


@pytest.fixture(scope="module")
def app(stand_ins: LocalStack) -> Iterator[App]:
    yield from start_app(stand_ins, GATES_CONSENT_TIMEOUT_MINUTES="0.3")


@pytest.fixture(scope="module")
def alice(app: App) -> requests.Session:
    return app.session(ALICE)


@pytest.fixture(scope="module")
def bob(app: App) -> requests.Session:
    return app.session(BOB)


@pytest.fixture
def journey(app: App, alice: requests.Session) -> Journey:
    assert app.stack.arm is not None
    app.stack.arm.reset()
    return Journey(app, alice)


def decide(session: requests.Session, link: str, decision: str, comment: str = "") -> requests.Response:
    """Open the link (which changes nothing), then press the button with a reason typed in."""
    fields = scenario.form_fields(session, link)
    return session.post(link, data={**fields, "decision": decision, "comment": comment}, timeout=60,
                        headers={"Accept": "application/json"})


def mails_for(journey: Journey, predicate: str) -> list[EmailMessage]:
    mail = journey.app.stack.mail
    assert mail is not None
    return [m for m in mail.messages() if predicate in str(m["Subject"]) and journey.run_id in scenario.body_text(m)]


def recipients(messages: list[EmailMessage]) -> list[str]:
    return sorted(address.strip() for m in messages for address in str(m["To"]).split(","))


def consent_link(journey: Journey) -> str:
    return scenario.link_in(journey.mail("Consent needed"))


def test_a_two_person_plan_needs_two_distinct_approvers(journey: Journey, alice: requests.Session,
                                                         bob: requests.Session) -> None:
    journey.raise_alert("e2e-two-person")
    link = consent_link(journey)
    assert decide(alice, link, "approve").status_code == 200
    assert journey.run({"awaiting_consent"})["requests"][0]["votes"][0]["by"] == ALICE
    again = decide(alice, link, "approve")
    assert again.status_code == 409
    assert again.json()["refusal"] == "already_answered"
    assert decide(bob, link, "approve").status_code == 200
    journey.answer("Credentials needed", "approve", alice)
    assert journey.run()["state"] == "succeeded"
    assert journey.restarts() == 1


def test_a_deny_with_a_reason_reaches_the_audit_the_emails_and_get(journey: Journey,
                                                                  bob: requests.Session) -> None:
    journey.raise_alert("e2e-two-person")
    link = consent_link(journey)
    assert decide(bob, link, "deny").status_code == 400  # the plan asks a reason to deny
    reason = "checkout sale until 06:00; restart after it"
    assert decide(bob, link, "deny", reason).status_code == 200
    run = journey.run()
    assert run["state"] == "denied"
    assert run["requests"][0]["comment"] == reason
    denied = next(e for e in run["timeline"] if e["event"] == "consent_denied")
    assert denied["details"]["comment"] == reason
    assert denied["details"]["channel"] == "browser"
    scenario.wait_until(lambda: len(mails_for(journey, "nothing more needed")) >= 1, 30, "the decided e-mail")
    time.sleep(1)  # any duplicate would arrive by now
    decided = mails_for(journey, "nothing more needed")
    assert recipients(decided) == [ALICE, BOB]
    assert all(reason in scenario.body_text(m) for m in decided)
    assert journey.restarts() == 0


def test_a_reminder_and_an_escalation_come_before_the_deadline_and_everyone_asked_hears_once(
        journey: Journey) -> None:
    journey.raise_alert("e2e-two-person")
    opened = time.monotonic()
    journey.mail("Consent needed")
    reminder = journey.mail("Reminder:")
    escalation = journey.mail("Escalated:")
    assert time.monotonic() - opened < CONSENT_SECONDS
    assert journey.run({"awaiting_consent"})["state"] == "awaiting_consent"  # both came before the deadline
    assert recipients([reminder]) == [ALICE, BOB]
    assert recipients([escalation]) == [LEAD]
    assert scenario.link_in(escalation) == scenario.link_in(reminder)
    assert journey.run()["state"] == "expired"
    scenario.wait_until(lambda: len(mails_for(journey, "nothing more needed")) >= 1, 30, "the expired e-mail")
    time.sleep(1)
    assert recipients(mails_for(journey, "nothing more needed")) == [ALICE, BOB, LEAD]
    events = journey.events()
    assert events.count("request_reminded") == 1
    assert events.count("request_escalated") == 1


def test_no_reminder_after_a_decision(journey: Journey, alice: requests.Session, bob: requests.Session) -> None:
    journey.raise_alert("e2e-two-person")
    link = consent_link(journey)
    assert decide(alice, link, "deny", "not now").status_code == 200
    time.sleep(CONSENT_SECONDS / 2 + 3)  # past the reminder's time
    assert mails_for(journey, "Reminder:") == []
    assert mails_for(journey, "Escalated:") == []
    assert "request_reminded" not in journey.events()


def test_a_two_read_runbook_the_agent_may_not_run_asks_for_credentials_once(journey: Journey,
                                                                           alice: requests.Session) -> None:
    arm = journey.app.stack.arm
    assert arm is not None
    arm.remove_role_assignments(AGENT)
    journey.raise_alert("e2e-read-only")
    journey.answer("Credentials needed", "approve", alice)
    run = journey.run()
    assert run["state"] == "succeeded"
    assert [r["kind"] for r in run["requests"]] == ["credentials"]
    assert journey.events().count("credential_reused") == 1
    assert len(mails_for(journey, "Credentials needed")) == 1
