"""Reading Azure Monitor alerts in the common alert schema, as an action group sends them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from shared.core.errors import MalformedAlert
from shared.core.model import Alert

COMMON_ALERT_SCHEMA = "azureMonitorCommonAlertSchema"
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
    alert_id = _text(essentials, "alertId")
    rule_name = _text(essentials, "alertRule")
    rule_id = str(essentials.get("alertRuleID") or rule_name)
    severity = _text(essentials, "severity")
    if severity not in SEVERITIES:
        raise MalformedAlert(f"data.essentials.severity is {severity!r}; expected one of Sev0..Sev4")
    condition = _text(essentials, "monitorCondition")
    if condition not in CONDITIONS:
        raise MalformedAlert(f"data.essentials.monitorCondition is {condition!r}; expected Fired or Resolved")
    targets = essentials.get("alertTargetIDs")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
        raise MalformedAlert("data.essentials.alertTargetIDs names no target resource")
    for target in targets:
        if not target.lower().startswith("/subscriptions/"):
            raise MalformedAlert(f"target {target!r} is not an Azure resource id")
    fired_at = _time(essentials, "firedDateTime")
    return Alert(
        alert_id=alert_id,
        rule_id=rule_id,
        rule_name=rule_name,
        severity=severity,
        condition=condition,
        fired_at=fired_at,
        target_resource_ids=tuple(_normalise_resource_id(t) for t in targets),
        description=str(essentials.get("description") or ""),
        custom_properties=_custom_properties(document),
    )


def _custom_properties(document: dict[str, Any]) -> dict[str, str]:
    # An action group can add custom properties (resource tags among them); they feed plan filters.
    data = document.get("data")
    props = data.get("customProperties") if isinstance(data, dict) else None
    if not isinstance(props, dict):
        return {}
    return {str(k): str(v) for k, v in props.items() if v is not None}


def _normalise_resource_id(resource_id: str) -> str:
    # Azure Monitor sends target ids in lower case; ARM ids compare case-insensitively.
    return resource_id.rstrip("/")


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedAlert(f"{path} is missing or not an object")
    return value


def _text(essentials: dict[str, Any], name: str) -> str:
    value = essentials.get(name)
    if not isinstance(value, str) or not value.strip():
        raise MalformedAlert(f"data.essentials.{name} is missing")
    return value


def _time(essentials: dict[str, Any], name: str) -> dt.datetime:
    text = _text(essentials, name)
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedAlert(f"data.essentials.{name} {text!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
