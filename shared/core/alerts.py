"""Reading Azure Monitor alerts in the common alert schema, as an action group sends them."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from shared.core.errors import MalformedAlert
from shared.core.model import Alert

COMMON_ALERT_SCHEMA = "azureMonitorCommonAlertSchema"
MAX_TARGETS = 20
MAX_DESCRIPTION = 2000
MAX_NAME = 260
MAX_PROPERTIES = 50
_GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_NAME = r"[a-z0-9_][a-z0-9_.\-]{0,79}"
# Exactly /subscriptions/{guid}/resourceGroups/{group}/providers/{namespace}/{type}/{name}[/{type}/{name}]...:
# no '.' or '..' segment, no query, fragment, escape or control character can move a run outside its scope.
RESOURCE_ID = re.compile(
    rf"^/subscriptions/{_GUID}/resourcegroups/[a-z0-9_()\-][a-z0-9_.()\-]{{0,89}}"
    rf"/providers/[a-z][a-z0-9]*(\.[a-z][a-z0-9]*)+/[a-z][a-z0-9]*/{_NAME}(/[a-z][a-z0-9]*/{_NAME}){{0,3}}$",
    re.IGNORECASE)
SEVERITIES = frozenset({"Sev0", "Sev1", "Sev2", "Sev3", "Sev4"})
CONDITIONS = frozenset({"Fired", "Resolved"})


def parse_alert(raw: bytes | str) -> Alert:
    """The alert, or `MalformedAlert` with a reason a person can act on."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedAlert(f"the message is not JSON ({error.__class__.__name__}: {error})") from None
    if not isinstance(document, dict):
        raise MalformedAlert("the message is JSON but not an object")
    schema = document.get("schemaId")
    if schema != COMMON_ALERT_SCHEMA:
        raise MalformedAlert(
            f"schemaId is {schema!r}; only the Azure Monitor common alert schema ({COMMON_ALERT_SCHEMA}) is accepted:"
            " enable 'Use common alert schema' on the action group")
    essentials = _object(document.get("data"), "data")
    essentials = _object(essentials.get("essentials"), "data.essentials")
    alert_id = _text(essentials, "alertId", 512)
    rule_name = _text(essentials, "alertRule", MAX_NAME)
    rule_id = str(essentials.get("alertRuleID") or rule_name)[:512]
    severity = _text(essentials, "severity")
    if severity not in SEVERITIES:
        raise MalformedAlert(f"data.essentials.severity is {severity!r}; expected one of Sev0..Sev4")
    condition = _text(essentials, "monitorCondition")
    if condition not in CONDITIONS:
        raise MalformedAlert(f"data.essentials.monitorCondition is {condition!r}; expected Fired or Resolved")
    targets = essentials.get("alertTargetIDs")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
        raise MalformedAlert("data.essentials.alertTargetIDs names no target resource")
    if len(targets) > MAX_TARGETS:
        raise MalformedAlert(f"data.essentials.alertTargetIDs names {len(targets)} resources; at most {MAX_TARGETS}")
    for target in targets:
        if not RESOURCE_ID.match(target.rstrip("/")) or target.rstrip("/").endswith("."):
            raise MalformedAlert(f"target {target[:300]!r} is not a well-formed Azure resource id")
    fired_at = _time(essentials, "firedDateTime")
    return Alert(
        alert_id=alert_id,
        rule_id=rule_id,
        rule_name=rule_name,
        severity=severity,
        condition=condition,
        fired_at=fired_at,
        target_resource_ids=tuple(_normalise_resource_id(t) for t in targets),
        description=_printable(str(essentials.get("description") or ""))[:MAX_DESCRIPTION],
        custom_properties=_custom_properties(document),
    )


def _custom_properties(document: dict[str, Any]) -> dict[str, str]:
    # An action group can add custom properties (resource tags among them); they feed plan filters.
    data = document.get("data")
    props = data.get("customProperties") if isinstance(data, dict) else None
    if not isinstance(props, dict):
        return {}
    items = [(str(k), str(v)) for k, v in props.items() if v is not None][:MAX_PROPERTIES]
    return {_printable(k)[:256]: _printable(v)[:256] for k, v in items}


def _normalise_resource_id(resource_id: str) -> str:
    # Azure Monitor sends target ids in lower case; ARM ids compare case-insensitively.
    return resource_id.rstrip("/")


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedAlert(f"{path} is missing or not an object")
    return value


def _text(essentials: dict[str, Any], name: str, limit: int = MAX_NAME) -> str:
    value = essentials.get(name)
    if not isinstance(value, str) or not value.strip():
        raise MalformedAlert(f"data.essentials.{name} is missing")
    if len(value) > limit or value != _printable(value):
        raise MalformedAlert(f"data.essentials.{name} is longer than {limit} characters or holds control characters")
    return value


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
