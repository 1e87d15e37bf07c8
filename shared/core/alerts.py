"""Reading Azure Monitor alerts in the common alert schema, as an action group sends them.

Every monitoring service's shape is accepted: metric, log search (Log Analytics, Application Insights,
Log Alerts V2), activity log (administrative, policy, autoscale, security), Service Health, Resource
Health, smart detection, Prometheus and budget (cost) alerts, fired and resolved. What the schema lets
a service leave out (`alertRule`, `severity`, `signalType`, `alertTargetIDs` are null in a budget
alert) is recorded as absent, never refused. Targets may be a resource, a resource group or a whole
subscription (Service Health). What is really malformed is refused with a reason a person can act on.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from shared.core.bounded_json import JsonLimits, load
from shared.core.codec import message_body_text
from shared.core.errors import MalformedAlert
from shared.core.model import Alert

COMMON_ALERT_SCHEMA = "azureMonitorCommonAlertSchema"
MAX_TARGETS = 20
MAX_DESCRIPTION = 2000
MAX_NAME = 260
MAX_PROPERTIES = 50
_GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_NAME = r"[a-z0-9_][a-z0-9_.\-]{0,79}"
_SUBSCRIPTION = rf"/subscriptions/{_GUID}"
_GROUP = rf"{_SUBSCRIPTION}/resourcegroups/[a-z0-9_()\-][a-z0-9_.()\-]{{0,89}}"
# Exactly /subscriptions/{guid}[/resourceGroups/{group}[/providers/{namespace}/{type}/{name}[/{type}/{name}]...]]:
# no '.' or '..' segment, no query, fragment, escape or control character (\Z: `$` would let a final
# newline through) can move a run outside its scope.
SUBSCRIPTION_ID = re.compile(rf"^{_SUBSCRIPTION}\Z", re.IGNORECASE)
RESOURCE_GROUP_ID = re.compile(rf"^{_GROUP}\Z", re.IGNORECASE)
RESOURCE_ID = re.compile(
    rf"^{_GROUP}/providers/[a-z][a-z0-9]*(\.[a-z][a-z0-9]*)+/[a-z][a-z0-9]*/{_NAME}(/[a-z][a-z0-9]*/{_NAME}){{0,3}}\Z",
    re.IGNORECASE)
SEVERITIES = frozenset({"Sev0", "Sev1", "Sev2", "Sev3", "Sev4"})
CONDITIONS = frozenset({"Fired", "Resolved"})


def target_scope(target: str) -> str:
    """What a target id names: `resource`, `resource group`, `subscription`, or `none` (no target)."""
    if RESOURCE_ID.match(target):
        return "resource"
    if RESOURCE_GROUP_ID.match(target):
        return "resource group"
    if SUBSCRIPTION_ID.match(target):
        return "subscription"
    return "none"


# Room a queued alert needs beyond its JSON text: AMQP framing and properties, the message id (64),
# correlation id (at most 128) and the run_id application property (at most 128): about 400 bytes
# through the SDK (a test against the Service Bus stand-in holds the largest alert to its queue).
QUEUE_ENVELOPE_BYTES = 1024


def limits_for_queue(max_message_bytes: int) -> JsonLimits:
    """The limits an alert is read with, for a Service Bus tier taking messages up to `max_message_bytes`."""
    return JsonLimits(max_bytes=max_message_bytes - QUEUE_ENVELOPE_BYTES)


def queued_size(document: dict[str, Any]) -> int:
    """The bytes an alert takes on the queue: its re-encoded text (escapes can make it longer than what
    was posted) and the envelope."""
    return len(message_body_text(document).encode()) + QUEUE_ENVELOPE_BYTES


def parse_alert(raw: bytes | str, limits: JsonLimits | None = None) -> Alert:
    """The alert, or `MalformedAlert` with a reason a person can act on (`PayloadTooLarge` for the size)."""
    return read_alert(raw, limits)[0]


def read_alert(raw: bytes | str, limits: JsonLimits | None = None) -> tuple[Alert, dict[str, Any]]:
    """The alert and the document it was read from (what goes on the queue)."""
    document = load(raw, limits or JsonLimits())
    return _alert(document), document


def _alert(document: Any) -> Alert:
    if not isinstance(document, dict):
        raise MalformedAlert("the message is JSON but not an object")
    schema = document.get("schemaId")
    if schema != COMMON_ALERT_SCHEMA:
        raise MalformedAlert(
            f"schemaId is {str(schema)[:100]!r}; only the Azure Monitor common alert schema ({COMMON_ALERT_SCHEMA}) is"
            " accepted: enable 'Use common alert schema' on the action group")
    essentials = _object(document.get("data"), "data")
    essentials = _object(essentials.get("essentials"), "data.essentials")
    alert_id = _text(essentials, "alertId", 512)
    rule_name = _optional_text(essentials, "alertRule", MAX_NAME)
    rule_id = _optional_text(essentials, "alertRuleID", 512) or _optional_text(essentials, "alertRuleId", 512)
    severity = _optional_text(essentials, "severity")
    if severity is not None and severity not in SEVERITIES:
        raise MalformedAlert(f"data.essentials.severity is {severity!r}; expected one of Sev0..Sev4 (or null)")
    condition = _text(essentials, "monitorCondition")
    if condition not in CONDITIONS:
        raise MalformedAlert(f"data.essentials.monitorCondition is {condition!r}; expected Fired or Resolved")
    _optional_text(essentials, "signalType")  # recorded by no one, but a non-text value is still malformed
    fired_at = _time(essentials, "firedDateTime")
    return Alert(
        alert_id=alert_id,
        # Without a rule (a budget alert) the alert's own id stands in: alerts correlate per rule and target.
        rule_id=rule_id or rule_name or alert_id,
        rule_name=rule_name,
        severity=severity,
        condition=condition,
        fired_at=fired_at,
        target_resource_ids=_targets(essentials.get("alertTargetIDs")),
        description=_printable(_optional_string(essentials, "description"))[:MAX_DESCRIPTION],
        custom_properties=_custom_properties(document),
        monitoring_service=_printable(_optional_string(essentials, "monitoringService"))[:MAX_NAME],
    )


def _targets(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
        raise MalformedAlert("data.essentials.alertTargetIDs is not a list of resource ids (or null)")
    if len(value) > MAX_TARGETS:
        raise MalformedAlert(f"data.essentials.alertTargetIDs names {len(value)} targets; at most {MAX_TARGETS}")
    targets: list[str] = []
    for target in value:
        normalised = _normalise_resource_id(target)
        if target_scope(normalised) == "none" or normalised.endswith("."):
            raise MalformedAlert(
                f"target {target[:300]!r} is not a well-formed Azure resource, resource group or subscription id")
        if normalised.lower() not in (t.lower() for t in targets):
            targets.append(normalised)
    return tuple(targets)


def _custom_properties(document: dict[str, Any]) -> dict[str, str]:
    # An action group can add custom properties (resource tags among them); they feed plan filters.
    data = document.get("data")
    props = data.get("customProperties") if isinstance(data, dict) else None
    if not isinstance(props, dict):
        return {}
    items = [(str(k), str(v)) for k, v in props.items() if v is not None][:MAX_PROPERTIES]
    return {_printable(k)[:256]: _printable(v)[:256] for k, v in items}


def _normalise_resource_id(resource_id: str) -> str:
    # A trailing slash names the same scope; ARM ids compare case-insensitively, so the case is kept.
    return resource_id.rstrip("/")


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedAlert(f"{path} is missing or not an object")
    return value


def _text(essentials: dict[str, Any], name: str, limit: int = MAX_NAME) -> str:
    value = _optional_text(essentials, name, limit)
    if value is None:
        raise MalformedAlert(f"data.essentials.{name} is missing")
    return value


def _optional_text(essentials: dict[str, Any], name: str, limit: int = MAX_NAME) -> str | None:
    """A short identifying text, or None when null, absent or blank."""
    value = essentials.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise MalformedAlert(f"data.essentials.{name} is a {type(value).__name__}, not text")
    if len(value) > limit or value != _printable(value):
        raise MalformedAlert(f"data.essentials.{name} is longer than {limit} characters or holds control characters")
    return value


def _optional_string(essentials: dict[str, Any], name: str) -> str:
    """Free text for people: cut and cleaned later, never a reason to refuse the alert."""
    value = essentials.get(name)
    return value if isinstance(value, str) else ""


def _printable(text: str) -> str:
    # Alert text goes into e-mail headers and pages: no control characters (CR/LF above all).
    return "".join(c if c.isprintable() else " " for c in text)


def _time(essentials: dict[str, Any], name: str) -> dt.datetime:
    text = _text(essentials, name)
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedAlert(f"data.essentials.{name} {text!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def document_of(alert: Alert, target: str) -> dict[str, Any]:
    """The alert again in the common alert schema, on one of its targets: what a replay sends, and what
    `parse_alert` reads back as the same alert (on that target)."""
    essentials: dict[str, Any] = {
        "alertId": alert.alert_id, "alertRule": alert.rule_name, "alertRuleID": alert.rule_id,
        "severity": alert.severity, "monitorCondition": alert.condition,
        "firedDateTime": alert.fired_at.isoformat(), "alertTargetIDs": [target] if target else None,
        "description": alert.description, "monitoringService": alert.monitoring_service,
        "essentialsVersion": "1.0", "alertContextVersion": "1.0",
    }
    return {"schemaId": COMMON_ALERT_SCHEMA, "data": {"essentials": essentials, "alertContext": {},
                                                      "customProperties": dict(alert.custom_properties) or None}}
