"""The global ceiling, and deadlines that pass with no answer, on the local runtime."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local_azure import scenario
from local_azure.agent import Agent, client_credentials_token
from local_azure.stack import LocalStack
from tests.e2e.conftest import App, start_app
from tests.e2e.journeys import AGENT, ALICE, ALICE_OID, VM, Journey

pytestmark = pytest.mark.e2e
VMSS = (f"/subscriptions/{scenario.SUBSCRIPTION}/resourceGroups/rg-prod-workers/providers/"
        "Microsoft.Compute/virtualMachineScaleSets/vmss-workers")


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


def _agent(app: App) -> Agent:
    entra = app.stack.entra
    assert entra is not None
    token = client_credentials_token(entra.authority, "a9e77000-0000-4000-8000-00000000a6e7",
                                     "local-only-sre-agent-secret-not-for-azure", "api://sre-gates/.default")
    return Agent(app.base_url, token, mcp_key="")


@pytest.mark.parametrize("unanswered", ["consent", "credentials"])
def test_a_proposed_plan_nobody_answers_in_time_expires_and_the_agent_reads_it(
        app: App, alice: requests.Session, unanswered: str) -> None:
    agent = _agent(app)
    proposed = agent.post("/api/plans", {
        "resource_id": VMSS, "rationale": "e2e: deadline", "idempotency_key": f"e2e-expiry-{unanswered}",
        "steps": [{"action": "vmss.set_capacity", "parameters": {"capacity": 4}}],
        "requester": {"object_id": ALICE_OID, "upn": ALICE}})
    assert proposed.status_code == 202, proposed.text
    body = proposed.json()
    if unanswered == "credentials":
        assert scenario.decide(alice, body["waiting_for"]["approval_url"], "approve").status_code == 200
    view = scenario.wait_until(
        lambda: (v := agent.get_run(body["run_id"]).json())["state"] in scenario.TERMINAL and v, 60, "the run to end")
    assert view["state"] == "expired"
    expired = "consent_expired" if unanswered == "consent" else "credential_expired"
    assert expired in [d["event"] for d in view["decisions"]]
    assert app.stack.arm.resource(VMSS)["capacity"] == 2
