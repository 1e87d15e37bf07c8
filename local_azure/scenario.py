"""What people and alerting do, scripted against the running local stack: post an alert, read the
e-mail, sign in, open the link, press a button. Used by the demo and the end-to-end tests."""

from __future__ import annotations

import email.message
import re
import time
import urllib.parse
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import requests

TERMINAL = {"succeeded", "failed", "denied", "expired", "cancelled", "unmatched", "drifted", "shadowed"}
LINK = re.compile(r"https?://\S+/api/runs/(?P<run>[0-9a-f]+)/requests/(?P<request>[0-9a-f]+)")


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = values.get("action", "")
        if tag == "input" and values.get("type") == "hidden":
            self.fields[values.get("name", "")] = values.get("value", "")


def body_text(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def link_in(message: email.message.EmailMessage) -> str:
    match = LINK.search(body_text(message))
    if match is None:
        raise AssertionError(f"no approval link in the e-mail {message['Subject']!r}")
    return match.group(0)


def run_id_of(link: str) -> str:
    match = LINK.search(link)
    if match is None:
        raise ValueError(f"not an approval link: {link}")
    return match.group("run")


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def post_alert(base_url: str, function_key: str, document: dict[str, Any]) -> requests.Response:
    return requests.post(f"{base_url}/api/alerts", json=document, headers={"x-functions-key": function_key},
                         timeout=30)


def form_fields(session: requests.Session, link: str) -> dict[str, str]:
    """The hidden fields of the decision form the signed-in person is shown."""
    page = session.get(link, timeout=30)
    page.raise_for_status()
    form = _Form()
    form.feed(page.text)
    return form.fields


def decide(session: requests.Session, link: str, decision: str) -> requests.Response:
    """Open the link as the signed-in person (which changes nothing), then press the button."""
    page = session.get(link, timeout=30)
    page.raise_for_status()
    form = _Form()
    form.feed(page.text)
    if not form.action:
        raise AssertionError(f"the page offers no decision: {page.text[:300]}")
    target = urllib.parse.urljoin(link, form.action)
    response = session.post(target, data={**form.fields, "decision": decision}, timeout=60)
    if decision == "approve" and 'name="confirm" value="yes"' in response.text:
        # A high-risk action asks once more (nothing is recorded yet): the person presses "Yes".
        confirm = _Form()
        confirm.feed(response.text)
        response = session.post(urllib.parse.urljoin(target, confirm.action), data=confirm.fields, timeout=60)
    return response


def get_run(session: requests.Session, base_url: str, run_id: str) -> dict[str, Any]:
    response = session.get(f"{base_url}/api/runs/{run_id}", headers={"Accept": "application/json"}, timeout=30)
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


def wait_for_run(session: requests.Session, base_url: str, run_id: str, states: set[str] | None = None,
                 timeout: float = 60) -> dict[str, Any]:
    wanted = states or TERMINAL

    def reached() -> dict[str, Any] | None:
        run = get_run(session, base_url, run_id)
        return run if run["state"] in wanted else None

    result: dict[str, Any] = wait_until(reached, timeout, f"run {run_id} to reach {sorted(wanted)}")
    return result


def latest_run(session: requests.Session, base_url: str, since: str = "") -> dict[str, Any] | None:
    response = session.get(f"{base_url}/api/runs", headers={"Accept": "application/json"}, timeout=30)
    response.raise_for_status()
    runs = [r for r in response.json()["runs"] if r["created_at"] > since]
    return runs[0] if runs else None


def timeline(run: dict[str, Any]) -> str:
    lines = [f"run {run['run_id']}: {run['state']} — {run['outcome']}"]
    for event in run.get("timeline", []):
        lines.append(f"  {event['at'][11:19]}  {event['event']:<22} {event['actor']['name']:<34} {event['summary']}")
    return "\n".join(lines)


SUBSCRIPTION = "2b5c3f6e-0000-4000-8000-0000000005b1"
VM_WEB_01 = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-prod-web/providers/Microsoft.Compute/"
             "virtualMachines/vm-web-01")


def common_alert(rule: str, resource_id: str, *, condition: str = "Fired", severity: str = "Sev1",
                 alert_id: str | None = None, fired_at: str | None = None,
                 description: str = "") -> dict[str, Any]:
    """An Azure Monitor alert in the common alert schema, as an action group's webhook posts it."""
    fired = fired_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    identifier = alert_id or f"{int(time.time() * 1000):x}"
    return {"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {
        "alertId": f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.AlertsManagement/alerts/{identifier}",
        "alertRule": rule, "severity": severity, "signalType": "Metric", "monitorCondition": condition,
        "monitoringService": "Platform", "alertTargetIDs": [resource_id.lower()],
        "originAlertId": identifier, "firedDateTime": fired, "description": description,
        "essentialsVersion": "1.0", "alertContextVersion": "1.0"}, "alertContext": {}}}


_RG = f"/subscriptions/{SUBSCRIPTION}/resourceGroups"
# A resource of the fixture for every resource type the action catalog acts on ('*': any type; the VM).
CATALOG_TARGETS: dict[str, str] = {
    "*": VM_WEB_01,
    "microsoft.compute/virtualmachines": VM_WEB_01,
    "microsoft.compute/virtualmachinescalesets":
        f"{_RG}/rg-prod-workers/providers/Microsoft.Compute/virtualMachineScaleSets/vmss-workers",
    "microsoft.web/sites": f"{_RG}/rg-prod-web/providers/Microsoft.Web/sites/app-checkout",
    "microsoft.web/serverfarms": f"{_RG}/rg-prod-web/providers/Microsoft.Web/serverfarms/plan-prod-web",
    "microsoft.containerservice/managedclusters":
        f"{_RG}/rg-prod-workers/providers/Microsoft.ContainerService/managedClusters/aks-prod",
    "microsoft.sql/servers/failovergroups":
        f"{_RG}/rg-prod-data/providers/Microsoft.Sql/servers/sql-orders-ne/failoverGroups/fog-orders",
    "microsoft.cache/redis": f"{_RG}/rg-prod-data/providers/Microsoft.Cache/redis/redis-sessions",
    "microsoft.documentdb/databaseaccounts":
        f"{_RG}/rg-prod-data/providers/Microsoft.DocumentDB/databaseAccounts/cosmos-orders",
    "microsoft.app/containerapps": f"{_RG}/rg-prod-web/providers/Microsoft.App/containerApps/ca-api",
    "microsoft.cdn/profiles/afdendpoints":
        f"{_RG}/rg-prod-web/providers/Microsoft.Cdn/profiles/fd-prod/afdEndpoints/ep-web",
}
# Function apps are sites too; their actions are tried on the function app.
ACTION_TARGETS: dict[str, str] = {
    "functionapp.restart": f"{_RG}/rg-prod-web/providers/Microsoft.Web/sites/func-orders",
}


def catalog_target(action: str, resource_type: str) -> str:
    return ACTION_TARGETS.get(action) or CATALOG_TARGETS[resource_type.lower()]


def example_parameters(schema: dict[str, Any]) -> dict[str, Any]:
    """An action's parameters from the first example of each (the catalog gives one for every parameter)."""
    return {name: prop["examples"][0] for name, prop in schema.get("properties", {}).items()}
