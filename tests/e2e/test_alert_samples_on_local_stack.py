"""Every monitoring service's alert (tests/fixtures/alerts), fired and resolved, is accepted and recorded
on the local stack: posted to the HTTP intake, and put straight on the `alerts` queue. Each one's status
URL leads to what it became; hostile bodies get a 4xx naming the limit, never a 5xx."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from local_azure import scenario
from local_azure.stack import LocalStack
from shared.core.alert_status import intake_key
from shared.core.alerts import parse_alert
from tests.alert_samples import samples
from tests.e2e.conftest import App, start_app
from tests.e2e.journeys import ALICE

pytestmark = pytest.mark.e2e
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def app(stand_ins: LocalStack) -> Iterator[App]:
    yield from start_app(stand_ins)


@pytest.fixture(scope="module")
def alice(app: App) -> requests.Session:
    return app.session(ALICE)


def fresh(document: dict[str, Any], tag: str) -> dict[str, Any]:
    """The sample with an alert id of its own, so each run of the suite is a new alert."""
    copied: dict[str, Any] = json.loads(json.dumps(document))
    essentials = copied["data"]["essentials"]
    essentials["alertId"] = f"{essentials['alertId']}-{tag}"
    return copied


def planned(alice: requests.Session, app: App, key: str) -> dict[str, Any]:
    def status() -> dict[str, Any] | None:
        answer = alice.get(f"{app.base_url}/api/alerts/{key}", timeout=30)
        document: dict[str, Any] = answer.json()
        return document if answer.status_code == 200 and document["state"] == "planned" else None

    return scenario.wait_until(status, TIMEOUT, f"alert {key} to be planned")


def test_every_sample_fired_then_resolved_is_accepted_over_http_and_recorded(
        app: App, alice: requests.Session) -> None:
    tag = uuid.uuid4().hex[:8]
    keys: dict[str, str] = {}
    for name, document in samples():  # every fired sample first, then every resolved one
        response = scenario.post_alert(app.base_url, app.function_key, fresh(document, tag))
        assert response.status_code == 202, (name, response.text)
        accepted = response.json()
        assert accepted["status_url"] == f"{app.base_url}/api/alerts/{accepted['key']}"
        keys[name] = accepted["key"]
    for name, key in keys.items():
        status = planned(alice, app, key)
        if name.endswith(":Fired"):
            (run,) = status["runs"]
            assert alice.get(run["url"], timeout=30).json()["state"], name
        else:
            assert "resolution recorded on run" in status["outcome"] or "no run took" in status["outcome"], name
    assert app.stack.service_bus.dead_letter_depth("alerts") == 0


def test_every_sample_put_straight_on_the_queue_is_recorded(app: App, alice: requests.Session) -> None:
    tag = uuid.uuid4().hex[:8]
    bodies = [(name, json.dumps(fresh(document, tag))) for name, document in samples()]
    with ServiceBusClient.from_connection_string(app.stack.service_bus.connection_string) as client, \
            client.get_queue_sender("alerts") as sender:
        for name, body in bodies:
            sender.send_messages(ServiceBusMessage(body, message_id=f"{name}-{tag}"))
    for name, body in bodies:
        status = planned(alice, app, intake_key(parse_alert(body)))
        assert status["outcome"], name
    assert app.stack.service_bus.dead_letter_depth("alerts") == 0


def test_a_budget_alert_is_a_run_that_says_it_can_never_act(app: App, alice: requests.Session) -> None:
    document = fresh(dict(samples())["budget-actual:Fired"], uuid.uuid4().hex[:8])
    key = scenario.post_alert(app.base_url, app.function_key, document).json()["key"]
    (run,) = planned(alice, app, key)["runs"]
    shown = alice.get(run["url"], timeout=30).json()
    assert shown["state"] == "unmatched"
    assert "can never act" in shown["outcome"]


def test_the_same_alert_posted_again_is_answered_as_a_duplicate_naming_its_run(
        app: App, alice: requests.Session) -> None:
    document = fresh(dict(samples())["metric-static-threshold:Fired"], uuid.uuid4().hex[:8])
    key = scenario.post_alert(app.base_url, app.function_key, document).json()["key"]
    runs = [r["run_id"] for r in planned(alice, app, key)["runs"]]
    again = scenario.post_alert(app.base_url, app.function_key, document)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["runs"] == runs


def test_an_alert_that_just_fired_posted_by_many_senders_at_once_is_one_run_and_then_a_duplicate(
        app: App, alice: requests.Session) -> None:
    """Sent while its status row is written: the queue's duplicate detection keeps it one message."""
    document = fresh(dict(samples())["metric-static-threshold:Fired"], uuid.uuid4().hex[:8])
    document["data"]["essentials"]["firedDateTime"] = dt.datetime.now(dt.UTC).isoformat()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: scenario.post_alert(app.base_url, app.function_key, document), range(8)))
    assert {answer.status_code for answer in answers} <= {200, 202}, [answer.text for answer in answers]
    key = answers[0].json()["key"]
    status = planned(alice, app, key)
    (run,) = status["runs"]
    assert status["outcome"].startswith(f"started run {run['run_id']}")
    again = scenario.post_alert(app.base_url, app.function_key, document)
    assert again.status_code == 200
    assert again.json()["runs"] == [run["run_id"]]
    assert app.stack.service_bus.dead_letter_depth("alerts") == 0


@pytest.mark.parametrize(("body", "status", "limit"), [
    (json.dumps({"schemaId": "azureMonitorCommonAlertSchema", "data": {"x": "y" * (2 * 1024 * 1024)}}), 413,
     "the limit is 261120 bytes"),
    ('{"a":' * 10_000 + "1" + "}" * 10_000, 400, "deeper than 64 levels"),
])
def test_a_hostile_body_gets_a_4xx_naming_the_limit_and_is_kept(app: App, alice: requests.Session, body: str,
                                                                  status: int, limit: str) -> None:
    response = requests.post(f"{app.base_url}/api/alerts", data=body.encode(), timeout=30,
                             headers={"x-functions-key": app.function_key, "Content-Type": "application/json"})
    assert response.status_code == status
    assert limit in response.json()["message"]
    rejected_id = response.json()["rejected_id"]
    listed = alice.get(f"{app.base_url}/api/rejected-alerts", params={"limit": "200"}, timeout=30).json()
    assert rejected_id in {r["message_id"] for r in listed["rejected"]}


def test_head_answers_where_get_does_with_no_body(app: App, alice: requests.Session) -> None:
    for path in ("/api/health", "/api/rejected-alerts", "/api/runs"):
        got = alice.get(f"{app.base_url}{path}", timeout=30)
        head = alice.head(f"{app.base_url}{path}", timeout=30)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b""
