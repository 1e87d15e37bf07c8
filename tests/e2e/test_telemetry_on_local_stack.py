"""Audit events reach Application Insights on the local runtime: the real app on its own host process,
with azure-monitor-opentelemetry's real exporter posting to the ingestion stand-in. With a connection
string every audit event arrives as a custom event `gates.<event>` carrying the run's dimensions, and no
token or link signature is in anything exported; without one nothing is exported and the run still
succeeds."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from local_azure import scenario
from local_azure.appinsights import EVENT_ENVELOPE, QUIET_EXPORTER, AppInsightsStandIn, event_name, properties
from local_azure.host.easy_auth import SESSION_COOKIE
from local_azure.stack import LocalStack
from tests.e2e.conftest import App, start_app
from tests.e2e.journeys import AGENT, ALICE, VM, Journey

pytestmark = pytest.mark.e2e

EXPORT_TIMEOUT = 30.0  # the exporter batches log records and sends them every 5 s
QUIET_PERIOD = 8.0  # longer than one export interval: what would have been sent has been by then


@pytest.fixture(scope="module")
def insights() -> Iterator[AppInsightsStandIn]:
    with AppInsightsStandIn() as stand_in:
        yield stand_in


def exporter_settings(folder: Path) -> dict[str, str]:
    # TMPDIR: the exporter's offline retry storage lives under the temp folder; keep it in the test's.
    return {**QUIET_EXPORTER, "TMPDIR": str(folder)}


def journey_on(app: App, reader: requests.Session) -> Journey:
    assert app.stack.arm is not None
    app.stack.arm.reset()
    return Journey(app, reader)


@pytest.fixture(scope="class")
def connected_app(stand_ins: LocalStack, insights: AppInsightsStandIn,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    yield from start_app(stand_ins, GATES_AUTONOMY_CEILING="autonomous",
                         APPLICATIONINSIGHTS_CONNECTION_STRING=insights.connection_string,
                         **exporter_settings(tmp_path_factory.mktemp("exporter")))


@pytest.fixture(scope="class")
def alice(connected_app: App) -> requests.Session:
    return connected_app.session(ALICE)


@pytest.fixture(scope="class")
def unconnected_app(stand_ins: LocalStack, insights: AppInsightsStandIn,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    insights.clear()  # the connected host has stopped by now: nothing more comes from it
    yield from start_app(stand_ins, GATES_AUTONOMY_CEILING="autonomous", APPLICATIONINSIGHTS_CONNECTION_STRING="",
                         **exporter_settings(tmp_path_factory.mktemp("exporter")))


def exporter_lines(app: App) -> list[str]:
    """What the exporter logged in the host's log (the host logs at INFO, with the logger's name)."""
    return [line for line in app.process.log_path.read_text(errors="replace").splitlines()
            if " azure.monitor.opentelemetry" in line]


def events_of(insights: AppInsightsStandIn, run_id: str) -> dict[str, dict[str, object]]:
    """The run's custom events by name, once `gates.run_ended` for it has arrived."""
    insights.wait_for(lambda e: event_name(e) == "gates.run_ended" and properties(e).get("run_id") == run_id,
                      timeout=EXPORT_TIMEOUT)
    return {str(event_name(e)): properties(e) for e in insights.events() if properties(e).get("run_id") == run_id}


class TestWithAConnectionString:
    def test_an_autonomous_run_arrives_as_custom_events(self, connected_app: App, alice: requests.Session,
                                                        insights: AppInsightsStandIn) -> None:
        app = connected_app
        journey = journey_on(app, alice)
        app.stack.arm.assign_role(AGENT, "Virtual Machine Contributor", VM)
        run_id = journey.raise_alert("e2e-write-autonomous")
        assert journey.run()["state"] == "succeeded"
        events = events_of(insights, run_id)
        for name in ("gates.run_started", "gates.action_executed", "gates.run_ended"):
            assert name in events, sorted(events)
        assert {f"gates.{event}" for event in journey.events()} <= set(events)
        assert any("Transmission succeeded" in line for line in exporter_lines(app))

    def test_each_custom_event_carries_the_run_stage_and_correlation_id(
            self, connected_app: App, alice: requests.Session, insights: AppInsightsStandIn) -> None:
        app = connected_app
        journey = journey_on(app, alice)
        app.stack.arm.assign_role(AGENT, "Virtual Machine Contributor", VM)
        run_id = journey.raise_alert("e2e-write-autonomous")
        journey.run()
        events = events_of(insights, run_id)
        for dims in events.values():
            assert dims["run_id"] == run_id
            assert dims["correlation_id"] == run_id
            assert dims["stage"]
        assert events["gates.run_ended"]["outcome"] == "succeeded"
        envelope = next(e for e in insights.events() if properties(e).get("run_id") == run_id)
        assert envelope["name"] == EVENT_ENVELOPE
        assert envelope["iKey"] == insights.instrumentation_key
        assert envelope["data"]["baseType"] == "EventData"

    def test_no_token_or_form_token_is_in_anything_exported(
            self, connected_app: App, alice: requests.Session, insights: AppInsightsStandIn) -> None:
        app = connected_app
        journey = journey_on(app, alice)  # the agent may not restart the VM: consent, then alice's credentials
        run_id = journey.raise_alert("e2e-write-review")
        secrets: list[str] = []
        for subject in ("Consent needed", "Credentials needed"):
            link = scenario.link_in(journey.mail(subject))
            secrets.append(scenario.form_fields(alice, link)["form_token"])
            assert scenario.decide(alice, link, "approve").status_code == 200
        assert journey.run()["state"] == "succeeded"
        me = alice.get(f"{app.base_url}/.auth/me", timeout=30).json()[0]
        secrets += [str(me[key]) for key in ("access_token", "id_token", "refresh_token") if me.get(key)]
        secrets.append(str(alice.cookies.get(SESSION_COOKIE)))
        assert len(secrets) >= 4
        assert "gates.credential_granted" in events_of(insights, run_id)
        exported = json.dumps(insights.envelopes())
        for secret in secrets:
            assert secret not in exported


class TestWithoutAConnectionString:
    def test_nothing_is_exported_and_the_run_still_succeeds(self, unconnected_app: App,
                                                            insights: AppInsightsStandIn) -> None:
        app = unconnected_app
        journey = journey_on(app, app.session(ALICE))
        app.stack.arm.assign_role(AGENT, "Virtual Machine Contributor", VM)
        journey.raise_alert("e2e-write-autonomous")
        assert journey.run()["state"] == "succeeded"
        assert journey.events()[-1] == "run_ended"
        time.sleep(QUIET_PERIOD)
        assert insights.envelopes() == []
        assert exporter_lines(app) == []
        assert "Traceback" not in app.process.log_path.read_text(errors="replace")
