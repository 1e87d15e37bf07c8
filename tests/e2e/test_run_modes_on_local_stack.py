"""Every row of the seed's read-only and write tables, and the denial paths, on the local runtime: the
real function app on the local Functions host, Service Bus and Azurite, Entra ID sign-in and OBO, ARM."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local_azure.stack import LocalStack
from tests.e2e.conftest import App, start_app
from tests.e2e.journeys import AGENT, ALICE, ALICE_OID, VM, Journey

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def app(stand_ins: LocalStack) -> Iterator[App]:
    yield from start_app(stand_ins, GATES_AUTONOMY_CEILING="autonomous")


@pytest.fixture(scope="module")
def alice(app: App) -> requests.Session:
    return app.session(ALICE)


@pytest.fixture
def journey(app: App, alice: requests.Session) -> Journey:
    assert app.stack.arm is not None
    app.stack.arm.reset()
    return Journey(app, alice)


ROWS = [
    # kind, agent has permission, mode, consent asked, credentials asked
    pytest.param("read", True, "review", False, False, id="read-permitted-review"),
    pytest.param("read", False, "review", False, True, id="read-unpermitted-review"),
    pytest.param("read", True, "autonomous", False, False, id="read-permitted-autonomous"),
    pytest.param("read", False, "autonomous", False, True, id="read-unpermitted-autonomous"),
    pytest.param("write", True, "review", True, False, id="write-permitted-review"),
    pytest.param("write", False, "review", True, True, id="write-unpermitted-review"),
    pytest.param("write", True, "autonomous", False, False, id="write-permitted-autonomous"),
    pytest.param("write", False, "autonomous", False, True, id="write-unpermitted-autonomous"),
]


@pytest.mark.parametrize(("kind", "permitted", "mode", "consent", "credentials"), ROWS)
def test_seed_table_row(journey: Journey, alice: requests.Session, kind: str, permitted: bool, mode: str,
                        consent: bool, credentials: bool) -> None:
    arm = journey.app.stack.arm
    if kind == "read" and not permitted:
        arm.remove_role_assignments(AGENT)
    if kind == "write" and permitted:
        arm.assign_role(AGENT, "Virtual Machine Contributor", VM)
    journey.raise_alert(f"e2e-{kind}-{mode}")
    if consent:
        journey.answer("Consent needed", "approve", alice)
    if credentials:
        journey.answer("Credentials needed", "approve", alice)
    run = journey.run()
    assert run["state"] == "succeeded", run
    kinds = [r["kind"] for r in run["requests"]]
    assert ("consent" in kinds) is consent
    assert ("credentials" in kinds) is credentials
    assert run["steps"][-1]["identity"] == ("delegated" if credentials else "agent")
    if kind == "write":
        assert journey.restarts() == 1
        assert journey.writes() == [("restart", ALICE_OID if credentials else AGENT)]
    else:
        assert journey.restarts() == 0
        assert journey.writes() == []
    events = journey.events()
    assert events[-1] == "run_ended"
    if credentials:
        assert events.index("credential_granted") < events.index("credential_revoked")


def test_consent_denied_takes_no_action(journey: Journey, alice: requests.Session) -> None:
    journey.app.stack.arm.assign_role(AGENT, "Virtual Machine Contributor", VM)
    journey.raise_alert("e2e-write-review")
    journey.answer("Consent needed", "deny", alice)
    assert journey.run()["state"] == "denied"
    assert journey.restarts() == 0
    assert journey.app.stack.arm.activity() == []
    assert "consent_denied" in journey.events()


def test_credentials_denied_take_no_action(journey: Journey, alice: requests.Session) -> None:
    journey.raise_alert("e2e-write-review")
    journey.answer("Consent needed", "approve", alice)
    journey.answer("Credentials needed", "deny", alice)
    assert journey.run()["state"] == "denied"
    assert journey.restarts() == 0
    assert journey.writes() == []
    assert "credential_denied" in journey.events()


def test_read_only_plan_in_review_mode_asks_no_consent(journey: Journey) -> None:
    journey.raise_alert("e2e-read-only")
    run = journey.run()
    assert run["state"] == "succeeded"
    assert run["requests"] == []
    assert journey.writes() == []
    assert "consent_not_needed" in journey.events()


def test_plan_mixing_read_and_write_asks_consent_once_and_elevates_only_the_write(
        journey: Journey, alice: requests.Session) -> None:
    journey.raise_alert("e2e-mixed-review")
    journey.answer("Consent needed", "approve", alice)
    journey.answer("Credentials needed", "approve", alice)
    run = journey.run()
    assert run["state"] == "succeeded"
    assert [r["kind"] for r in run["requests"]] == ["consent", "credentials"]
    assert [s["identity"] for s in run["steps"]] == ["agent", "delegated"]
    assert journey.writes() == [("restart", ALICE_OID)]


def test_an_approver_without_the_permission_is_refused_before_anything_is_attempted(
        journey: Journey, alice: requests.Session) -> None:
    from local_azure import scenario

    bob = journey.app.session("bob@contoso.test")  # Reader only in ARM
    journey.raise_alert("e2e-write-autonomous")
    refused = scenario.decide(bob, scenario.link_in(journey.mail("Credentials needed")), "approve")
    assert refused.status_code == 403
    assert "lack Microsoft.Compute/virtualMachines/restart/action" in refused.text
    assert journey.run({"awaiting_credentials"})["state"] == "awaiting_credentials"
    assert journey.writes() == []
    journey.answer("Credentials needed", "deny", alice)
    assert journey.run()["state"] == "denied"
    assert journey.restarts() == 0
