"""Alerts generated from the common alert schema, and mutations of them and of every sample: the HTTP
intake never answers 5xx, the plan function never fails a delivery, and every refusal carries a reason."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gates.alert_lookup import current_status
from shared.core.alert_status import intake_key
from shared.core.alerts import SEVERITIES, parse_alert
from tests.alert_samples import NAMES, fired, resolved
from tests.pipeline import SUB, Pipeline, plan_book

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PLANS = plan_book("review", ["vm.restart"])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20)

names = st.from_regex(r"[a-z0-9][a-z0-9\-]{0,20}", fullmatch=True)
targets = st.one_of(
    st.just(f"/subscriptions/{SUB}"),
    names.map(lambda g: f"/subscriptions/{SUB}/resourceGroups/{g}"),
    st.tuples(names, st.sampled_from(["Microsoft.Compute/virtualMachines", "Microsoft.Web/sites",
                                      "Microsoft.Storage/storageAccounts"]), names)
    .map(lambda t: f"/subscriptions/{SUB}/resourceGroups/{t[0]}/providers/{t[1]}/{t[2]}"),
)
times = st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z"))


@st.composite
def schema_alerts(draw: st.DrawFn) -> dict[str, Any]:
    """An alert as the schema allows it: any monitoring service, any severity or none, any target scope or none."""
    essentials: dict[str, Any] = {
        "alertId": f"/subscriptions/{SUB}/providers/Microsoft.AlertsManagement/alerts/{draw(names)}",
        "alertRule": draw(st.none() | names),
        "severity": draw(st.none() | st.sampled_from(sorted(SEVERITIES))),
        "signalType": draw(st.none() | st.sampled_from(["Metric", "Log", "Activity Log", "ActivityLog"])),
        "monitorCondition": draw(st.sampled_from(["Fired", "Resolved"])),
        "monitoringService": draw(st.sampled_from(["Platform", "Log Analytics", "Log Alerts V2", "ServiceHealth",
                                                   "Resource Health", "SmartDetector", "CostAlerts", "Prometheus",
                                                   "Activity Log - Administrative"])),
        "alertTargetIDs": draw(st.none() | st.lists(targets, max_size=4)),
        "firedDateTime": draw(times),
        "description": draw(st.text(max_size=200)),
        "essentialsVersion": "1.0", "alertContextVersion": "1.0",
    }
    for optional in ("alertRule", "severity", "signalType", "alertTargetIDs", "description"):
        if draw(st.booleans()) and draw(st.booleans()):
            del essentials[optional]
    return {"schemaId": "azureMonitorCommonAlertSchema",
            "data": {"essentials": essentials, "alertContext": draw(json_values),
                     "customProperties": draw(st.none() | st.dictionaries(names, st.text(max_size=20), max_size=3))}}


samples = st.sampled_from(NAMES).flatmap(lambda n: st.sampled_from([fired(n), resolved(n)]))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A sample or a generated alert, changed at random places, then perhaps broken as bytes."""
    document = copy.deepcopy(draw(samples | schema_alerts()))
    for _ in range(draw(st.integers(0, 4))):
        paths = [p for p in _paths(document) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "weird"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "weird":
            parent[path[-1]] = draw(st.sampled_from([
                None, "", " ", 0, -1, 1e308, True, [], {}, "x" * 70_000, "\r\nBcc: x@example.com", "../..",
                f"/subscriptions/{SUB}/resourceGroups/rg/../other", f"/subscriptions/{SUB}?x=1", ["a", 1, None],
                "Sev9", "Unknown", "2026-13-45T99:99:99Z", "/subscriptions/", "\x00", "€" * 1000]))
        else:
            parent[path[-1]] = draw(json_values)
    body = json.dumps(document, ensure_ascii=draw(st.booleans())).encode()
    damage = draw(st.sampled_from(["none", "none", "none", "truncate", "duplicate", "deep", "bytes", "prefix"]))
    if damage == "truncate":
        body = body[:draw(st.integers(0, len(body)))]
    elif damage == "duplicate":
        body = body.replace(b'"essentials": {', b'"essentials": {"alertId": "dup", ', 1)
    elif damage == "deep":
        depth = draw(st.integers(60, 5_000))
        body = b'{"schemaId": "azureMonitorCommonAlertSchema", "data": ' + b"[" * depth + b"]" * depth + b"}"
    elif damage == "bytes":
        body = draw(st.binary(max_size=200))
    elif damage == "prefix":
        body = b"\xef\xbb\xbf" + body
    return body


def _kept_reason(p: Pipeline) -> str:
    return str(p.rejected.items[-1]["reason"]) if p.rejected.items else ""


@FUZZ
@given(body=mutated())
def test_the_http_intake_never_answers_5xx_and_every_refusal_says_why(body: bytes) -> None:
    p = Pipeline(PLANS)
    response = p.http("POST", "alerts", "https://gates.example/api/alerts", body=body)
    answer = json.loads(response.get_body())
    assert response.status_code in (200, 202, 400, 413), answer
    if response.status_code >= 400:
        assert answer["message"]
        assert _kept_reason(p) == answer["message"]
    else:
        assert answer["key"]
        p.drain()
        assert not p.dead_letters
        assert p.alert_status.get(answer["key"]) is not None


@FUZZ
@given(body=mutated())
def test_the_plan_function_never_fails_a_delivery_and_every_refusal_says_why(body: bytes) -> None:
    p = Pipeline(PLANS)
    p.deliver_raw_alert(body, "fuzzed")  # an exception here would be a failed delivery, redelivered ten times
    if p.rejected.items:
        assert _kept_reason(p)
    else:
        assert p.alert_status.get(intake_key(parse_alert(body))) is not None


@FUZZ
@given(document=schema_alerts())
def test_every_alert_the_schema_allows_is_accepted_and_recorded(document: dict[str, Any]) -> None:
    p = Pipeline(PLANS)
    response = p.http("POST", "alerts", "https://gates.example/api/alerts", body=json.dumps(document).encode())
    assert response.status_code == 202, response.get_body()
    p.drain()
    status = current_status(p.services, json.loads(response.get_body())["key"])  # as GET /api/alerts/{key}
    assert status is not None
    assert status.state.value == "planned"
    targets = document["data"]["essentials"].get("alertTargetIDs") or []
    fired_alert = document["data"]["essentials"]["monitorCondition"] == "Fired"
    assert len(status.runs) == (len({t.lower() for t in targets}) or 1 if fired_alert else 0)
