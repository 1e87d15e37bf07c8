"""Logs and audit events for Application Insights.

Every audit event becomes a custom event `gates.<event>` (through OpenTelemetry, when
APPLICATIONINSIGHTS_CONNECTION_STRING is set) with the run id, step, stage and correlation id as custom
dimensions. Nothing secret is in an audit event: tokens never enter the core, and form tokens are
not part of any event.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from shared.core.model import AuditEvent, Run
from shared.core.pause import SwitchEntry

logger = logging.getLogger("sre_gates")
EVENT_LOGGER_NAME = "sre_gates.events"
_SAFE_DETAIL_KEYS = ("step", "action", "identity", "status", "code", "request_id", "deadline", "state", "mode",
                     "plan", "version", "switch_reason", "switch_by", "switch_at", "switch_source", "paused_reason",
                     "paused_for_seconds")
# What the guardrails decided, as top-level dimensions so that a query can group by them (the workbook's
# shadow-mode and limits panels): on `guardrails_decided`, `shadow_decided` and `autonomy_capped`.
_GUARDRAIL_KEYS = ("effect", "decided_by", "limit", "freeze", "shadow", "shadow_by", "credentials_known")
_REASON_CHARS = 500


class AuditSink(Protocol):
    def emit(self, run: Run, event: AuditEvent, stage: str) -> None: ...

    def alert_rejected(self, message_id: str, reason: str) -> None: ...

    def switch_changed(self, entry: SwitchEntry) -> None: ...


def dimensions(run: Run, event: AuditEvent, stage: str) -> dict[str, Any]:
    dims: dict[str, Any] = {
        "run_id": run.run_id, "correlation_id": run.run_id, "stage": stage, "state": run.state.value,
        "actor": event.actor.id, "actor_kind": event.actor.kind, "plan": run.plan_name, "resource_id": run.resource_id,
    }
    for key in _SAFE_DETAIL_KEYS:
        value = event.details.get(key)
        if value is not None and isinstance(value, (str, int, float, bool)):
            dims[key] = value
    for key in _GUARDRAIL_KEYS:
        value = event.details.get(key)
        if isinstance(value, (str, int, float, bool)):
            dims[key] = value
    if event.event in ("guardrails_decided", "shadow_decided", "autonomy_capped"):
        dims.update(_guardrail_dimensions(event.details))
    if event.event == "run_ended":
        dims["outcome"] = run.state.value
        dims["duration_ms"] = int((event.at - run.created_at).total_seconds() * 1000)
    return dims


def switch_dimensions(entry: SwitchEntry) -> dict[str, Any]:
    return {"stage": "kill_switch", "actor": entry.actor.id, "actor_kind": entry.actor.kind,
            "actor_name": entry.actor.name, "switch_reason": entry.reason[:500], "switch_source": entry.source.value,
            "switch_at": entry.at.isoformat(timespec="seconds"),
            "engaged": entry.event == "switch_thrown"}


def _guardrail_dimensions(details: dict[str, Any]) -> dict[str, Any]:
    """The rest of a guardrails decision, flattened: the reason (cut), each step's effect and deciding rule
    ("1 vm.restart: deny (rule no-restart (global))"), and whether a shadow run would have needed credentials."""
    dims: dict[str, Any] = {}
    if isinstance(details.get("reason"), str):
        dims["reason"] = details["reason"][:_REASON_CHARS]
    steps = details.get("steps")
    if isinstance(steps, list):
        dims["steps"] = "; ".join(
            f"{int(s.get('step', 0)) + 1} {s.get('action', '')}: {s.get('effect', '')} ({s.get('decided_by', '')})"
            for s in steps if isinstance(s, dict))[:_REASON_CHARS * 2]
    needed = details.get("credentials_needed")
    if isinstance(needed, dict):
        dims["credentials_needed"] = bool(needed)
        dims["credentials_steps"] = len(needed)
    return dims


class LoggingAuditSink:
    """Structured log lines, one per audit event; the OpenTelemetry sink adds custom events."""

    def emit(self, run: Run, event: AuditEvent, stage: str) -> None:
        logger.info("%s: %s", event.event, event.summary, extra={"custom_dimensions": dimensions(run, event, stage)})

    def switch_changed(self, entry: SwitchEntry) -> None:
        logger.warning("kill switch %s by %s: %s", "thrown" if entry.event == "switch_thrown" else "lifted",
                       entry.actor.name, entry.reason, extra={"custom_dimensions": switch_dimensions(entry)})

    def alert_rejected(self, message_id: str, reason: str) -> None:
        logger.warning("alert %s rejected: %s", message_id, reason,
                       extra={"custom_dimensions": _rejection(message_id, reason)})


class OpenTelemetryAuditSink(LoggingAuditSink):
    def __init__(self) -> None:
        self._events = logging.getLogger(EVENT_LOGGER_NAME)
        # Custom events are the product's audit trail (and an alert rule reads them): they must not depend
        # on whoever set the root logger's level; Python's default, WARNING, would drop them silently.
        self._events.setLevel(logging.INFO)

    def emit(self, run: Run, event: AuditEvent, stage: str) -> None:
        super().emit(run, event, stage)
        # azure-monitor-opentelemetry turns a log record with `microsoft.custom_event.name` into a
        # customEvents row.
        attributes = {"microsoft.custom_event.name": f"gates.{event.event}", **dimensions(run, event, stage)}
        self._events.info(f"gates.{event.event}", extra=attributes)

    def switch_changed(self, entry: SwitchEntry) -> None:
        super().switch_changed(entry)
        attributes = {"microsoft.custom_event.name": f"gates.{entry.event}", **switch_dimensions(entry)}
        self._events.info(f"gates.{entry.event}", extra=attributes)

    def alert_rejected(self, message_id: str, reason: str) -> None:
        super().alert_rejected(message_id, reason)
        attributes = {"microsoft.custom_event.name": "gates.alert_rejected", **_rejection(message_id, reason)}
        self._events.info("gates.alert_rejected", extra=attributes)


def _rejection(message_id: str, reason: str) -> dict[str, Any]:
    return {"message_id": message_id, "reason": reason[:500], "stage": "plan", "outcome": "rejected"}


def configure(connection_string: str | None, authentication: str | None = None) -> AuditSink:
    """`authentication` is APPLICATIONINSIGHTS_AUTHENTICATION_STRING: `Authorization=AAD` (and an optional
    `ClientId=`) makes the exporter sign in with the managed identity, as the resource requires."""
    if not connection_string:
        return LoggingAuditSink()
    from azure.monitor.opentelemetry import configure_azure_monitor

    options: dict[str, Any] = {"connection_string": connection_string, "logger_name": "sre_gates"}
    if authentication and "authorization=aad" in authentication.lower():
        from azure.identity import ManagedIdentityCredential

        fields = dict(part.split("=", 1) for part in authentication.split(";") if "=" in part)
        client_id = fields.get("ClientId")
        options["credential"] = ManagedIdentityCredential(client_id=client_id) if client_id \
            else ManagedIdentityCredential()
    configure_azure_monitor(**options)
    return OpenTelemetryAuditSink()
