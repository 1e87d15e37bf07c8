"""Audit events reach Application Insights as custom events `gates.<event>` with the run's dimensions,
through OpenTelemetry; without a connection string nothing is exported; no secret is ever in them."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from azure.monitor.opentelemetry.exporter.export.logs._exporter import _convert_log_to_envelope
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from shared.core.links import form_token
from shared.core.model import RequestKind
from shared.telemetry import EVENT_LOGGER_NAME, LoggingAuditSink, OpenTelemetryAuditSink, configure
from tests.pipeline import ALICE, LINK_KEY, Pipeline, alert, plan_book, user_token

RESTART = "Microsoft.Compute/virtualMachines/restart/action"
TOKEN = user_token(ALICE, marker="SECRET-user-assertion")


@pytest.fixture
def exported() -> Iterator[InMemoryLogRecordExporter]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(logger_provider=provider)
    events = logging.getLogger(EVENT_LOGGER_NAME)
    events.addHandler(handler)
    events.setLevel(logging.INFO)
    yield exporter
    events.removeHandler(handler)
    provider.shutdown()


def run_with_elevation() -> Pipeline:
    p = Pipeline(plan_book("review", ["vm.restart"]), agent_can=set(), user_can={RESTART})
    p.services.audit_sink = OpenTelemetryAuditSink()
    p.send_alert(alert())
    p.drain()
    p.decide(RequestKind.CONSENT, "approve")
    p.post_decision(p.pending_request(RequestKind.CREDENTIALS), "approve",
                    headers={"X-MS-TOKEN-AAD-ACCESS-TOKEN": TOKEN})
    p.drain()
    return p


def test_each_audit_event_is_a_custom_event_with_the_runs_dimensions(exported: InMemoryLogRecordExporter) -> None:
    p = run_with_elevation()
    records = [r.log_record for r in exported.get_finished_logs()]
    names = [r.attributes["microsoft.custom_event.name"] for r in records]
    for expected in ("gates.run_started", "gates.consent_requested", "gates.consent_granted",
                     "gates.credential_requested", "gates.credential_granted", "gates.action_attempted",
                     "gates.credential_revoked", "gates.action_executed", "gates.run_ended"):
        assert expected in names
    ended = next(r for r in records if r.attributes["microsoft.custom_event.name"] == "gates.run_ended")
    assert ended.attributes["run_id"] == p.run().run_id
    assert ended.attributes["correlation_id"] == p.run().run_id
    assert ended.attributes["outcome"] == "succeeded"
    assert "stage" in ended.attributes
    assert ended.attributes["duration_ms"] >= 0


def test_application_insights_receives_them_as_events(exported: InMemoryLogRecordExporter) -> None:
    run_with_elevation()
    envelope = _convert_log_to_envelope(exported.get_finished_logs()[0])
    assert envelope.name == "Microsoft.ApplicationInsights.Event"
    assert envelope.data.base_data.name.startswith("gates.")
    assert "run_id" in envelope.data.base_data.properties


def test_no_token_or_form_token_reaches_telemetry(exported: InMemoryLogRecordExporter) -> None:
    p = run_with_elevation()
    text = " ".join(str(r.log_record.attributes) + str(r.log_record.body) for r in exported.get_finished_logs())
    assert TOKEN not in text
    for request in p.run().requests:
        assert form_token(LINK_KEY, ALICE.object_id, request.request_id) not in text


def test_without_a_connection_string_nothing_is_exported(exported: InMemoryLogRecordExporter) -> None:
    sink = configure(None)
    assert type(sink) is LoggingAuditSink
    p = Pipeline(plan_book("autonomous", ["vm.restart"]), agent_can={RESTART})
    p.services.audit_sink = sink
    p.send_alert(alert())
    p.drain()
    assert exported.get_finished_logs() == ()


def test_a_rejected_alert_is_a_custom_event_with_its_reason(exported: InMemoryLogRecordExporter) -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    p.services.audit_sink = OpenTelemetryAuditSink()
    p.deliver_raw_alert(b"{broken", "bad-1")
    (record,) = [r.log_record for r in exported.get_finished_logs()]
    assert record.attributes["microsoft.custom_event.name"] == "gates.alert_rejected"
    assert record.attributes["message_id"] == "bad-1"
    assert "not JSON" in record.attributes["reason"]


def test_custom_events_do_not_depend_on_the_root_loggers_level(exported: InMemoryLogRecordExporter) -> None:
    events, root = logging.getLogger(EVENT_LOGGER_NAME), logging.getLogger()
    saved = root.level
    events.setLevel(logging.NOTSET)
    root.setLevel(logging.WARNING)  # Python's default, when no host configured logging
    try:
        sink = OpenTelemetryAuditSink()
        sink.alert_rejected("bad-2", "not JSON")
    finally:
        root.setLevel(saved)
    (record,) = [r.log_record for r in exported.get_finished_logs()]
    assert record.attributes["microsoft.custom_event.name"] == "gates.alert_rejected"
