"""The whole function app driven in memory: the real blueprints and handlers, fakes at the ports,
real `func.ServiceBusMessage` / `func.HttpRequest` objects, at-least-once delivery with redelivery."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.servicebus import ServiceBusMessage

from gates import blueprints
from shared.adapters.sealing import AesGcmSealer
from shared.core.catalog import load_catalog
from shared.core.links import form_token
from shared.core.model import Mode, OutboundMessage, Request, RequestKind, RequestState, Run
from shared.core.plans import parse_plan_book
from shared.core.requests import Timeouts
from shared.services import Policy, Services, ServicesProvider
from shared.telemetry import LoggingAuditSink
from shared.topology import Queue
from tests.fakes import (
    Delivery,
    FakeAlertStatus,
    FakeArm,
    FakeBus,
    FakeClock,
    FakeCorrelationStore,
    FakeLimitStore,
    FakeNotifier,
    FakeRejectedAlerts,
    FakeRunStore,
    FakeSwitchStore,
    FakeTokenBroker,
)

ROOT = Path(__file__).resolve().parent.parent
CATALOG = load_catalog(ROOT / "config" / "actions.json")  # the shipped catalog
LINK_KEY = b"test-link-key"
SUB = "2b5c3f6e-0000-4000-8000-0000000005b1"
VM = f"/subscriptions/{SUB}/resourceGroups/rg-prod-web/providers/Microsoft.Compute/virtualMachines/vm-web-01"
MAX_DELIVERIES = 10


@dataclass(frozen=True)
class User:
    object_id: str
    upn: str
    roles: tuple[str, ...]


ALICE = User("a11ce000-0000-4000-8000-000000000001", "alice@contoso.test", ("Gates.Approver",))
BOB = User("b0b00000-0000-4000-8000-000000000002", "bob@contoso.test", ("Gates.Approver",))
MALLORY = User("3a110000-0000-4000-8000-000000000003", "mallory@contoso.test", ())


def user_token(user: User, *, expires: dt.datetime | None = None, marker: str = "") -> str:
    """A token shaped as Easy Auth's token store passes it (the app reads only its `exp`)."""
    def part(document: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")

    exp = expires or dt.datetime(2026, 11, 24, 5, 0, tzinfo=dt.UTC)
    payload = {"preferred_username": user.upn, "exp": int(exp.timestamp()), "marker": marker}
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(payload)}.signature{marker}"


def principal_headers(user: User, *, token: str | None = None) -> dict[str, str]:
    claims = [{"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": user.object_id},
              {"typ": "preferred_username", "val": user.upn}, {"typ": "name", "val": user.upn.split("@")[0]}]
    claims += [{"typ": "roles", "val": role} for role in user.roles]
    principal = {"auth_typ": "aad", "claims": claims, "name_typ": "preferred_username", "role_typ": "roles"}
    headers = {
        "X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(principal).encode()).decode(),
        "X-MS-CLIENT-PRINCIPAL-ID": user.object_id,
        "X-MS-CLIENT-PRINCIPAL-NAME": user.upn,
        "X-MS-CLIENT-PRINCIPAL-IDP": "aad",
    }
    headers["X-MS-TOKEN-AAD-ACCESS-TOKEN"] = token or user_token(user)
    return headers


def alert(rule: str = "vm-not-responding", resource: str = VM, *, condition: str = "Fired",
          severity: str = "Sev1", alert_id: str = "a1", fired: str = "2026-11-24T02:58:00Z") -> dict[str, Any]:
    return {"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {
        "alertId": f"/subscriptions/{SUB}/providers/Microsoft.AlertsManagement/alerts/{alert_id}",
        "alertRule": rule, "severity": severity, "signalType": "Metric", "monitorCondition": condition,
        "monitoringService": "Platform", "alertTargetIDs": [resource.lower()], "firedDateTime": fired,
        "description": "VM heartbeat missing", "essentialsVersion": "1.0", "alertContextVersion": "1.0"},
        "alertContext": {}}}


def plan_book(mode: str, steps: list[str], *, rule: str = "vm-not-responding") -> str:
    return json.dumps({
        "version": 7,
        "runbooks": {"book": {"steps": [{"action": s} for s in steps]}},
        "plans": [{"name": "plan", "mode": mode,
                   "filters": {"alertRules": [rule], "resourceTypes": ["Microsoft.Compute/virtualMachines"]},
                   "scope": {"subscriptions": [SUB]}, "approvers": [ALICE.upn, BOB.upn], "runbook": "book"}],
    })


class Pipeline:
    def __init__(self, plans: str | None = None, *, agent_can: set[str] | None = None,
                 user_can: set[str] | None = None, ceiling: Mode = Mode.AUTONOMOUS) -> None:
        text = plans if plans is not None else (ROOT / "config" / "response-plans.json").read_text()
        self.clock = FakeClock()
        self.store = FakeRunStore()
        self.bus = FakeBus(self.clock)
        self.arm = FakeArm(agent_can, user_can)
        self.tokens = FakeTokenBroker()
        self.notifier = FakeNotifier()
        self.rejected = FakeRejectedAlerts()
        self.alert_status = FakeAlertStatus()
        self.limits = FakeLimitStore()
        self.switches = FakeSwitchStore()
        self.dead_letters: list[Delivery] = []
        counter = iter(range(1, 1_000_000))
        self.services = Services(
            runs=self.store, correlations=FakeCorrelationStore(), rejected_alerts=self.rejected,
            alert_status=self.alert_status, limits=self.limits, bus=self.bus,
            arm=self.arm, tokens=self.tokens, notifier=self.notifier, sealer=AesGcmSealer(os.urandom(32)),
            policy=Policy(
                plans=parse_plan_book(text, "plans.json", CATALOG), ceiling=ceiling,
                timeouts=Timeouts(consent=dt.timedelta(minutes=30), credentials=dt.timedelta(minutes=15)),
                cooldown=dt.timedelta(hours=3), public_base_url="https://gates.example", form_key=LINK_KEY),
            switches=self.switches,
            clock=self.clock, ids=lambda: f"id{next(counter):04d}", audit_sink=LoggingAuditSink(),
        )
        provider = ServicesProvider(lambda: self.services)
        app = func.FunctionApp()
        for bp in blueprints(provider):
            app.register_blueprint(bp)
        self.functions: dict[str, Callable[..., Any]] = {}
        self.queue_functions: dict[str, Callable[..., Any]] = {}  # one message a call, whatever the cardinality
        self.batch_functions: dict[str, Callable[..., Any]] = {}  # as the runtime calls them
        self.routes: dict[tuple[str, str], Callable[..., Any]] = {}
        for function in app.get_functions():
            trigger = function.get_trigger().get_dict_repr()
            user_function = function.get_user_function()
            self.functions[function.get_function_name()] = user_function
            if trigger["type"] == "serviceBusTrigger":
                self.queue_functions[trigger["queueName"]] = (
                    _one_at_a_time(user_function) if _batched(trigger) else user_function)
                self.batch_functions[trigger["queueName"]] = user_function
            elif trigger["type"] == "httpTrigger":
                for method in trigger["methods"]:
                    self.routes[(str(getattr(method, "value", method)), trigger["route"])] = user_function

    # ------------------------------------------------------------------------------------ messaging

    def send_alert(self, document: dict[str, Any], message_id: str = "alert-1") -> None:
        self.bus.send([OutboundMessage(Queue.ALERTS.value, message_id, document, message_id)])

    def deliver_raw_alert(self, raw: bytes, message_id: str = "raw-1") -> None:
        """Alerting put bytes of its own on the queue: deliver them as they are."""
        self.queue_functions[Queue.ALERTS.value](ServiceBusMessage(
            body=raw, message_id=message_id, delivery_count=1, content_type="application/json",
            application_properties={}, user_properties={}))

    def sb_message(self, delivery: Delivery) -> ServiceBusMessage:
        message = delivery.message
        return ServiceBusMessage(
            body=json.dumps(message.body).encode(), message_id=message.message_id,
            correlation_id=message.correlation_id, delivery_count=delivery.delivery_count,
            content_type="application/json", enqueued_time_utc=self.clock.now(),
            application_properties={"run_id": message.correlation_id, **message.properties}, user_properties={})

    def deliver_batch(self, deliveries: list[Delivery]) -> bool:
        """Run a batch trigger's function on several deliveries at once; on an exception all come back."""
        function = self.batch_functions[deliveries[0].message.queue]
        try:
            function([self.sb_message(delivery) for delivery in deliveries])
        except Exception:
            self._failed(deliveries)
            return False
        return True

    def deliver(self, delivery: Delivery) -> bool:
        """Run the queue's function on one delivery; on an exception the message comes back."""
        function = self.queue_functions[delivery.message.queue]
        try:
            function(self.sb_message(delivery))
        except Exception:
            self._failed([delivery])
            return False
        return True

    def _failed(self, deliveries: list[Delivery]) -> None:
        """What the broker does with messages whose invocation failed: back to the queue, or dead-lettered."""
        for delivery in deliveries:
            if delivery.delivery_count >= MAX_DELIVERIES:
                self.dead_letters.append(delivery)
            else:
                self.bus.put_back(delivery)

    def due(self, delivery: Delivery) -> bool:
        at = delivery.message.scheduled_for
        return at is None or at <= self.clock.now()

    def drain(self, limit: int = 500, *, skip: set[str] | None = None) -> int:
        """Deliver every due message, in queue order, until nothing due is left."""
        delivered = 0
        while delivered < limit:
            progressed = False
            for queue in list(self.bus.queues):
                if skip and queue in skip:
                    continue
                items = self.bus.queues[queue]
                due = next((d for d in items if self.due(d)), None)
                if due is None:
                    continue
                items.remove(due)
                self.deliver(due)
                delivered += 1
                progressed = True
            if not progressed:
                return delivered
        raise AssertionError("the pipeline did not settle")

    def pass_deadline(self, delta: dt.timedelta = dt.timedelta(hours=1)) -> None:
        self.clock.advance(delta)
        self.drain()

    # -------------------------------------------------------------------------------------- people

    def http(self, method: str, route: str, url: str, *, headers: dict[str, str] | None = None,
             params: dict[str, str] | None = None, route_params: dict[str, str] | None = None,
             body: bytes = b"") -> func.HttpResponse:
        request = func.HttpRequest(method=method, url=url, headers=headers or {}, params=params or {},
                                   route_params=route_params or {}, body=body)
        return self.routes[(method, route)](request)

    def run(self) -> Run:
        runs = self.store.all_runs()
        assert len(runs) == 1, f"expected one run, found {len(runs)}"
        return runs[0]

    def pending_request(self, kind: RequestKind) -> Request:
        run = self.run()
        request = next((r for r in run.requests if r.kind is kind and r.state is RequestState.PENDING), None)
        assert request is not None, f"no pending {kind.value} request; run is {run.state.value}"
        return request

    def open_page(self, request: Request, user: User = ALICE) -> func.HttpResponse:
        run_id = self.run().run_id
        return self.http("GET", "runs/{run_id}/requests/{request_id}", f"https://gates.example/api/runs/{run_id}/"
                         f"requests/{request.request_id}", headers=principal_headers(user),
                         route_params={"run_id": run_id, "request_id": request.request_id})

    def post_decision(self, request: Request, decision: str, user: User = ALICE, *,
                      plan_hash: str | None = None, token: str | None = None,
                      headers: dict[str, str] | None = None) -> func.HttpResponse:
        run_id = self.run().run_id
        form = {"decision": decision, "plan_hash": plan_hash or request.plan_hash,
                "form_token": token if token is not None else form_token(LINK_KEY, user.object_id,
                                                                         request.request_id)}
        return self.http("POST", "runs/{run_id}/requests/{request_id}",
                         f"https://gates.example/api/runs/{run_id}/requests/{request.request_id}",
                         headers={**principal_headers(user), "Content-Type": "application/x-www-form-urlencoded",
                                  **(headers or {})},
                         route_params={"run_id": run_id, "request_id": request.request_id},
                         body=urllib.parse.urlencode(form).encode())

    def decide(self, kind: RequestKind, decision: str, user: User = ALICE) -> func.HttpResponse:
        response = self.post_decision(self.pending_request(kind), decision, user)
        assert response.status_code == 200, response.get_body()
        self.drain()
        return response

    def events(self) -> list[str]:
        return [e.event for e in self.store.list_audit(self.run().run_id)]


def _batched(trigger: dict[str, Any]) -> bool:
    return str(getattr(trigger.get("cardinality"), "value", trigger.get("cardinality")) or "one") == "many"


def _one_at_a_time(batch_function: Callable[..., Any]) -> Callable[..., Any]:
    """A batch trigger's function given one message, as a batch of one."""
    return lambda message: batch_function([message])
