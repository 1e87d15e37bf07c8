"""The Application Insights ingestion stand-in: what the real azure-monitor-opentelemetry exporter posts is
kept and answered as Breeze answers; what Breeze refuses gets Breeze's error JSON."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator

import pytest
import requests
from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

from local_azure.appinsights import EVENT_ENVELOPE, QUIET_EXPORTER, AppInsightsStandIn, event_name, properties

TIMEOUT = 10.0


@pytest.fixture
def insights(monkeypatch: pytest.MonkeyPatch) -> Iterator[AppInsightsStandIn]:
    for name, value in QUIET_EXPORTER.items():
        monkeypatch.setenv(name, value)
    with AppInsightsStandIn() as stand_in:
        yield stand_in


def envelope(insights: AppInsightsStandIn, name: str = "gates.test", **overrides: object) -> dict[str, object]:
    item: dict[str, object] = {
        "name": EVENT_ENVELOPE, "time": "2026-01-01T00:00:00.000000Z", "iKey": insights.instrumentation_key,
        "data": {"baseType": "EventData", "baseData": {"ver": 2, "name": name, "properties": {"run_id": "r1"}}}}
    item.update(overrides)
    return item


def track(insights: AppInsightsStandIn, body: bytes, **headers: str) -> requests.Response:
    return requests.post(f"{insights.endpoint}v2.1/track", data=body, timeout=TIMEOUT,
                         headers={"Content-Type": "application/json", **headers})


def test_a_custom_event_from_the_real_exporter_is_kept(insights: AppInsightsStandIn) -> None:
    exporter = AzureMonitorLogExporter(connection_string=insights.connection_string, disable_offline_storage=True)
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("tests.appinsights.stand_in")
    logger.setLevel(logging.INFO)
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    try:
        logger.info("gates.run_ended", extra={"microsoft.custom_event.name": "gates.run_ended", "run_id": "r1"})
        kept = insights.wait_for(lambda e: event_name(e) == "gates.run_ended", timeout=TIMEOUT)
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
    assert kept["name"] == EVENT_ENVELOPE
    assert kept["iKey"] == insights.instrumentation_key
    assert properties(kept)["run_id"] == "r1"


def test_a_json_array_is_accepted_with_breezes_counts(insights: AppInsightsStandIn) -> None:
    response = track(insights, json.dumps([envelope(insights), envelope(insights, "gates.other")]).encode())
    assert response.status_code == 200
    assert response.json() == {"itemsReceived": 2, "itemsAccepted": 2, "errors": []}
    assert [event_name(e) for e in insights.events()] == ["gates.test", "gates.other"]


def test_gzipped_newline_delimited_envelopes_are_accepted(insights: AppInsightsStandIn) -> None:
    lines = "\n".join(json.dumps(envelope(insights, f"gates.e{i}")) for i in range(3))
    response = track(insights, gzip.compress(lines.encode()), **{"Content-Encoding": "gzip"})
    assert response.json() == {"itemsReceived": 3, "itemsAccepted": 3, "errors": []}
    assert len(insights.envelopes()) == 3


def test_an_envelope_for_another_resource_is_refused_and_the_rest_kept(insights: AppInsightsStandIn) -> None:
    stranger = envelope(insights, iKey="00000000-0000-4000-8000-000000000000")
    response = track(insights, json.dumps([envelope(insights), stranger]).encode())
    assert response.status_code == 206
    assert response.json()["itemsAccepted"] == 1
    assert response.json()["errors"] == [{"index": 1, "statusCode": 400, "message": "Invalid instrumentation key"}]
    assert len(insights.envelopes()) == 1


def test_a_body_that_is_not_json_gets_breezes_400(insights: AppInsightsStandIn) -> None:
    response = track(insights, b"{broken")
    assert response.status_code == 400
    assert response.json()["errors"][0]["statusCode"] == 400
    assert insights.envelopes() == []


def test_live_metrics_are_told_nobody_is_watching(insights: AppInsightsStandIn) -> None:
    response = requests.post(f"{insights.endpoint}QuickPulseService.svc/ping", data=b"{}", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["x-ms-qps-subscribed"] == "false"


def test_waiting_for_what_never_comes_ends_in_a_timeout(insights: AppInsightsStandIn) -> None:
    with pytest.raises(TimeoutError):
        insights.wait_for(lambda e: True, timeout=0.2)
