"""Guardrails on the local runtime: a denied action never reaches ARM, an asked one waits for consent, an
allowed one runs autonomously; and a blast-radius limit holds across two host instances at once."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local_azure import scenario
from local_azure.processes import free_port
from local_azure.stack import LocalStack
from tests.e2e.conftest import App, start_app
from tests.e2e.journeys import AGENT, ALICE, TIMEOUT, Journey

pytestmark = pytest.mark.e2e
PLANS = Path(__file__).resolve().parent / "guardrails_plans.json"
VMSS = scenario.CATALOG_TARGETS["microsoft.compute/virtualmachinescalesets"]
SITE = scenario.CATALOG_TARGETS["microsoft.web/sites"]
RESTART_RULES = [f"e2e-gr-restart-{i:02d}" for i in range(12)]
LIMIT = 3


@pytest.fixture(scope="module")
def app(stand_ins: LocalStack) -> Iterator[App]:
    yield from start_app(stand_ins, GATES_RESPONSE_PLANS=str(PLANS), GATES_AUTONOMY_CEILING="autonomous")


@pytest.fixture(scope="module")
def second(stand_ins: LocalStack, app: App) -> Iterator[App]:
    """Another instance of the same app, on the same storage and queues: they compete for messages."""
    yield from start_app(stand_ins, port=free_port(), GATES_RESPONSE_PLANS=str(PLANS),
                         GATES_AUTONOMY_CEILING="autonomous")


@pytest.fixture(scope="module")
def alice(app: App) -> requests.Session:
    return app.session(ALICE)


@pytest.fixture
def journey(app: App, alice: requests.Session) -> Journey:
    app.stack.arm.reset()
    app.stack.arm.assign_role(AGENT, "Virtual Machine Contributor", VMSS)
    return Journey(app, alice)


def capacity(app: App) -> int:
    return int(app.stack.arm.resource(VMSS)["capacity"])


def test_a_denied_action_never_reaches_arm(journey: Journey) -> None:
    journey.raise_alert("e2e-gr-scale-30", VMSS)
    run = journey.run()
    assert run["state"] == "denied"
    assert "never-above-20" in run["outcome"]
    assert "the subscription's core quota" in run["outcome"]
    assert journey.app.stack.arm.activity() == []
    assert capacity(journey.app) == 2


def test_an_asked_action_waits_for_consent_then_runs(journey: Journey, alice: requests.Session) -> None:
    journey.raise_alert("e2e-gr-scale-12", VMSS)
    run = journey.run({"awaiting_consent"})
    assert run["guardrails"]["decided_by"] == "rule ask-above-8 (global)"
    assert journey.app.stack.arm.activity() == []
    journey.answer("Consent needed", "approve", alice)
    assert journey.run()["state"] == "succeeded"
    assert capacity(journey.app) == 12


def test_an_allowed_action_runs_autonomously(journey: Journey) -> None:
    journey.raise_alert("e2e-gr-scale-4", VMSS)
    run = journey.run()
    assert run["state"] == "succeeded"
    assert run["mode"] == "autonomous"
    assert "consent_implicit" in journey.events()
    assert capacity(journey.app) == 4


def _restarts(app: App) -> list[dict[str, Any]]:
    return [a for a in app.stack.arm.activity() if a["action"].lower().endswith("sites/restart/action")]


def test_concurrent_runs_on_two_instances_act_at_most_the_limit_and_the_rest_ask(
        app: App, second: App, alice: requests.Session) -> None:
    app.stack.arm.reset()
    app.stack.arm.assign_role(AGENT, "Website Contributor", SITE)
    since = dt.datetime.now(dt.UTC).isoformat()
    start = threading.Barrier(len(RESTART_RULES))
    answers: list[int] = []

    def post(rule: str, host: App) -> None:
        start.wait()
        answers.append(scenario.post_alert(host.base_url, host.function_key,
                                           scenario.common_alert(rule, SITE, alert_id=f"{rule}-{since}")).status_code)

    threads = [threading.Thread(target=post, args=(rule, app if i % 2 else second))
               for i, rule in enumerate(RESTART_RULES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [202] * len(RESTART_RULES)

    def settled() -> list[dict[str, Any]] | None:
        listed = alice.get(f"{app.base_url}/api/runs", headers={"Accept": "application/json"}, timeout=30).json()
        ours = [r for r in listed["runs"] if r["alert_rule"] in RESTART_RULES and r["created_at"] > since]
        done = [r for r in ours if r["state"] in ("succeeded", "awaiting_consent")]
        return ours if len(done) == len(RESTART_RULES) else None

    runs = scenario.wait_until(settled, TIMEOUT * 2, "every limited run to act or ask")
    states = sorted(r["state"] for r in runs)
    assert states == ["awaiting_consent"] * (len(RESTART_RULES) - LIMIT) + ["succeeded"] * LIMIT
    assert len(_restarts(app)) == LIMIT
    asked = [scenario.get_run(alice, app.base_url, r["run_id"]) for r in runs if r["state"] == "awaiting_consent"]
    assert all("at most 3 writes per resource per hour" in json.dumps(r["guardrails"]) for r in asked)


def test_an_admin_replays_stored_alerts_through_shadow_mode_and_nothing_acts(
        journey: Journey, alice: requests.Session) -> None:
    started = dt.datetime.now(dt.UTC)
    journey.raise_alert("e2e-gr-scale-4", VMSS)
    assert journey.run()["state"] == "succeeded"
    journey.mail("Run succeeded")  # the real run's own e-mail, before counting what the replay sends
    writes_before = len(journey.app.stack.arm.activity())
    mail = journey.app.stack.mail
    assert mail is not None
    mails_before = len(mail.messages())
    olga = journey.app.session("olga@contoso.test")
    page = olga.get(f"{journey.app.base_url}/api/shadow-report", params={"format": "html"}, timeout=30)
    token = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert token is not None, page.text[:500]
    since = (started - dt.timedelta(seconds=1)).isoformat()
    until = dt.datetime.now(dt.UTC).isoformat()
    answer = olga.post(f"{journey.app.base_url}/api/shadow/replay", timeout=60, json={
        "since": since, "until": until, "plans": ["gr-scale-4"], "form_token": token.group(1)})
    assert answer.status_code == 202, answer.text
    assert answer.json()["alerts_sent"] == 1
    replay = answer.json()["replay_id"]

    def replayed() -> dict[str, Any] | None:
        report = alice.get(f"{journey.app.base_url}/api/shadow-report", params={"replay": replay, "format": "json"},
                           timeout=30).json()
        return report if report.get("shadow_runs") == 1 else None

    report = scenario.wait_until(replayed, TIMEOUT, "the replay's shadow run")
    assert "gr-scale-4" in json.dumps(report["scopes"])
    assert report["would"]["autonomous"] == 1
    assert len(journey.app.stack.arm.activity()) == writes_before
    assert [str(m["Subject"]) for m in mail.messages()[mails_before:]] == []
    assert alice.post(f"{journey.app.base_url}/api/shadow/replay", json={"since": since, "until": until},
                      timeout=30).status_code == 403  # an approver is no admin

