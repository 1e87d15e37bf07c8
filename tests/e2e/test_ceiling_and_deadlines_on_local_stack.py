"""The global ceiling, and deadlines that pass with no answer, on the local runtime."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local_azure.stack import LocalStack
from tests.e2e.conftest import App, start_app
from tests.e2e.journeys import AGENT, ALICE, VM, Journey

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def app(stand_ins: LocalStack) -> Iterator[App]:
    # A review ceiling, and deadlines short enough to pass during a test (6 s).
    yield from start_app(stand_ins, GATES_AUTONOMY_CEILING="review", GATES_CONSENT_TIMEOUT_MINUTES="0.1",
                         GATES_CREDENTIAL_TIMEOUT_MINUTES="0.1")


@pytest.fixture(scope="module")
def alice(app: App) -> requests.Session:
    return app.session(ALICE)


@pytest.fixture
def journey(app: App, alice: requests.Session) -> Journey:
    app.stack.arm.reset()
    return Journey(app, alice)


def test_autonomy_asked_for_by_a_plan_under_a_review_ceiling_waits_for_consent(journey: Journey) -> None:
    journey.app.stack.arm.assign_role(AGENT, "Virtual Machine Contributor", VM)
    journey.raise_alert("e2e-write-autonomous")
    run = journey.run({"awaiting_consent"})
    assert run["mode"] == "review"
    assert run["requested_mode"] == "autonomous"
    assert "autonomy_capped" in journey.events()
    assert journey.app.stack.arm.activity() == []
    assert journey.run()["state"] == "expired"  # nobody answers: no action
    assert journey.restarts() == 0


def test_consent_not_given_in_time_expires_with_no_action(journey: Journey) -> None:
    journey.raise_alert("e2e-write-review")
    journey.mail("Consent needed")
    run = journey.run()
    assert run["state"] == "expired"
    assert journey.app.stack.arm.activity() == []
    assert "consent_expired" in journey.events()


def test_credentials_not_granted_in_time_expire_with_no_action(journey: Journey, alice: requests.Session) -> None:
    journey.raise_alert("e2e-write-review")
    journey.answer("Consent needed", "approve", alice)
    journey.mail("Credentials needed")
    run = journey.run()
    assert run["state"] == "expired"
    assert journey.writes() == []
    assert "credential_expired" in journey.events()


def test_a_late_decision_is_refused(journey: Journey, alice: requests.Session) -> None:
    from local_azure import scenario

    journey.raise_alert("e2e-write-review")
    link = scenario.link_in(journey.mail("Consent needed"))
    journey.run()  # expired
    page = alice.get(link, timeout=30)
    assert "expired" in page.text
