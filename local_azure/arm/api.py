"""ARM's REST surface over the stand-in's state: authentication, api-version, faults, RBAC, locks,
existence, then the resource's own behaviour, in the order ARM's gateway and resource providers apply them."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .errors import ArmError
from .resources import SITE, SITE_ACTIONS, SUPPORTED_TYPES, VM, VM_ACTIONS, VMSS, Resource
from .state import ArmState, Operation
from .tokens import Principal, TokenValidator

API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview|-beta|-alpha)?$")
READ_SUBSCRIPTION = "Microsoft.Resources/subscriptions/read"
READ_RESOURCE_GROUP = "Microsoft.Resources/subscriptions/resourceGroups/read"


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-serialisable, or None for an empty body
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """One ARM request, as the HTTP layer hands it over."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # names in lower case: HTTP header names are case-insensitive
    body: bytes
    query_string: str
    base_url: str  # scheme://host[:port] the client used, for the operation URLs we hand back

    def param(self, name: str) -> str | None:
        lowered = name.lower()
        for key, values in self.query.items():
            if key.lower() == lowered and values:
                return values[0]
        return None


@dataclass(frozen=True)
class Handling:
    """The permission a resource request needs, and what it does once allowed."""

    permission: str
    is_write: bool
    perform: Callable[[Resource], Reply]


class ArmApi:
    def __init__(self, state: ArmState, validator: TokenValidator, operation_retry_after: int = 0) -> None:
        self.state = state
        self.validator = validator
        self.operation_retry_after = operation_retry_after

    def handle(self, call: Call) -> Reply:
        correlation_id = call.headers.get("x-ms-correlation-request-id") or str(uuid.uuid4())
        try:
            reply = self._handle(call, correlation_id)
        except ArmError as error:
            reply = Reply(error.status, error.body(), dict(error.headers))
        reply.headers.setdefault("x-ms-correlation-request-id", correlation_id)
        return reply

    def _handle(self, call: Call, correlation_id: str) -> Reply:
        principal = self.validator.validate(call.headers.get("authorization"))
        api_version = call.param("api-version")
        if api_version is None or not api_version.strip():
            raise errors.missing_api_version()
        if not API_VERSION.match(api_version):
            raise errors.invalid_api_version(api_version)
        self.state.settle_due_operations()
        segments = [s for s in call.path.split("/") if s]
        lowered = [s.lower() for s in segments]
        scope = call.path.rstrip("/") or "/"
        self._apply_request_faults(principal, scope, call.method, lowered)
        reply = self._route(call, principal, segments, lowered, api_version, correlation_id)
        if reply.status < 400 and self.state.take_fault("gateway_timeout", principal, scope, call.method):
            raise errors.gateway_timeout()
        return reply

    def _route(self, call: Call, principal: Principal, segments: list[str], lowered: list[str], api_version: str,
               correlation_id: str) -> Reply:
        match lowered:
            case ["subscriptions", _]:
                return self._subscription(call, principal, segments[1])
            case ["subscriptions", _, "resourcegroups", _]:
                return self._resource_group(call, principal, segments[1], segments[3])
            case ["subscriptions", _, "providers", _, "locations", _, ("operations" | "operationresults") as kind, _]:
                return self._operation(call, segments[7], kind == "operationresults")
            case ["subscriptions", _, "resourcegroups", _, "providers", _, _, _, *rest] if len(rest) <= 1:
                return self._resource(call, principal, segments, api_version, correlation_id)
        raise errors.invalid_request_uri(call.path)

    # ---- faults armed by tests -----------------------------------------------------------------
    def _apply_request_faults(self, principal: Principal, scope: str, method: str, lowered: list[str]) -> None:
        subscription = lowered[1] if len(lowered) > 1 and lowered[0] == "subscriptions" else ""
        throttle = self.state.take_fault("throttle", principal, scope, method)
        if throttle is not None:
            raise errors.throttled(subscription, method != "GET", throttle.retry_after)
        is_operation_poll = "locations" in lowered and "providers" in lowered[:3]
        if is_operation_poll and self.state.take_fault("poll_forbidden", principal, scope, method):
            raise errors.authorization_failed(principal.display_name, principal.object_id,
                                              "Microsoft.Compute/locations/operations/read", scope)
        if not is_operation_poll:
            challenge = self.state.take_fault("claims_challenge", principal, scope, method)
            if challenge is not None:
                raise errors.claims_challenge(challenge.encoded_claims())

    # ---- subscriptions and resource groups -----------------------------------------------------
    def _require_subscription(self, subscription: str, principal: Principal) -> dict[str, Any]:
        found = self.state.subscriptions.get(subscription.lower())
        if found is None:
            raise errors.subscription_not_found(subscription)
        tenant = self.state.tenant_id
        if tenant and principal.tenant_id.lower() != tenant.lower():
            raise errors.wrong_tenant(str(principal.claims.get("iss", "")), tenant)
        return found

    def _authorise(self, principal: Principal, action: str, scope: str) -> None:
        with self.state.lock:
            permitted = self.state.access.is_permitted(principal.object_id, action, scope)
        if not permitted:
            raise errors.authorization_failed(principal.display_name, principal.object_id, action, scope)

    def _subscription(self, call: Call, principal: Principal, subscription: str) -> Reply:
        if call.method != "GET":
            raise errors.method_not_allowed(call.method)
        found = self._require_subscription(subscription, principal)
        self._authorise(principal, READ_SUBSCRIPTION, f"/subscriptions/{subscription}")
        return Reply(200, {"id": f"/subscriptions/{found['subscriptionId']}",
                           "subscriptionId": found["subscriptionId"], "tenantId": self.state.tenant_id,
                           "displayName": found.get("displayName", ""), "state": "Enabled"})

    def _resource_group(self, call: Call, principal: Principal, subscription: str, name: str) -> Reply:
        if call.method != "GET":
            raise errors.method_not_allowed(call.method)
        self._require_subscription(subscription, principal)
        self._authorise(principal, READ_RESOURCE_GROUP, call.path.rstrip("/"))
        group = self.state.resource_groups.get(f"/subscriptions/{subscription}/resourcegroups/{name}".lower())
        if group is None:
            raise errors.resource_group_not_found(name)
        return Reply(200, group.arm_json())

    # ---- resources -----------------------------------------------------------------------------
    def _resource(self, call: Call, principal: Principal, segments: list[str], api_version: str,
                  correlation_id: str) -> Reply:
        subscription, group, namespace, type_name, name = (segments[i] for i in (1, 3, 5, 6, 7))
        child = segments[8] if len(segments) > 8 else None
        requested_type = f"{namespace}/{type_name}"
        resource_type = next((t for t in SUPPORTED_TYPES if t.lower() == requested_type.lower()), None)
        if resource_type is None:
            raise errors.invalid_resource_type(type_name, namespace, api_version)
        self._require_subscription(subscription, principal)
        # ARM authorises over the resource id as the client spelt it, and names it so in AuthorizationFailed.
        scope = "/" + "/".join(segments[:8])
        handling = self._handling(call, resource_type, child, api_version, correlation_id, principal)
        try:
            self._authorise(principal, handling.permission, scope)
            if handling.is_write:
                locked = self.state.locks_over(scope, ("ReadOnly",))
                if locked:
                    raise errors.scope_locked(scope, locked)
            with self.state.lock:
                if f"/subscriptions/{subscription}/resourcegroups/{group}".lower() not in self.state.resource_groups:
                    raise errors.resource_group_not_found(group)
                resource = self.state.resources.get(scope.lower())
                if resource is None:
                    raise errors.resource_not_found(resource_type, name, group)
                reply = handling.perform(resource)
        except ArmError as error:
            if handling.is_write:
                self.state.record(principal, handling.permission, scope, "Failed", error.status, correlation_id,
                                  code=error.code)
            raise
        return reply

    def _handling(self, call: Call, resource_type: str, child: str | None, api_version: str, correlation_id: str,
                  principal: Principal) -> Handling:
        method = call.method
        if child is None:
            if method == "GET":
                expand = (call.param("$expand") or "").lower() == "instanceview"
                return Handling(f"{resource_type}/read", False,
                              lambda r: Reply(200, r.arm_json(expand_instance_view=expand and r.type == VM)))
            if method in ("PUT", "PATCH") and resource_type == VMSS:
                update = _json_body(call.body)
                return Handling(f"{VMSS}/write", True,
                              lambda r: self._update_scale_set(call, r, update, api_version, correlation_id,
                                                               principal))
            raise errors.method_not_allowed(method)
        if resource_type == VM and child.lower() == "instanceview":
            if method != "GET":
                raise errors.method_not_allowed(method)
            return Handling(f"{VM}/read", False, lambda r: Reply(200, r.instance_view()))
        vm_action = next((a for a in VM_ACTIONS if a.lower() == child.lower()), None)
        if resource_type == VM and vm_action is not None:
            if method != "POST":
                raise errors.method_not_allowed(method)
            return Handling(f"{VM}/{vm_action}/action", True,
                          lambda r: self._vm_action(call, r, vm_action, api_version, correlation_id, principal))
        site_action = next((a for a in SITE_ACTIONS if a.lower() == child.lower()), None)
        if resource_type == SITE and site_action is not None:
            if method != "POST":
                raise errors.method_not_allowed(method)
            return Handling(f"{SITE}/{site_action}/action", True,
                          lambda r: self._site_action(r, site_action, correlation_id, principal))
        namespace, _, type_name = resource_type.partition("/")
        raise errors.invalid_resource_type(f"{type_name}/{child}", namespace, api_version)

    def _vm_action(self, call: Call, vm: Resource, action: str, api_version: str, correlation_id: str,
                   principal: Principal) -> Reply:
        if action == "restart" and vm.power_state == "deallocated":
            raise errors.operation_not_allowed(
                f"Operation 'restart' is not allowed on VM '{vm.name}' since the VM is deallocated. "
                "Start the VM instead.")
        transitional, final = VM_ACTIONS[action]
        vm.power_state = transitional
        vm.provisioning_state = "Updating"

        def complete() -> None:
            vm.power_state = final
            vm.provisioning_state = "Succeeded"
            if action == "restart":
                vm.record_restart()

        operation = self.state.start_operation("Microsoft.Compute", vm, f"{VM}/{action}/action", principal,
                                               correlation_id, complete)
        self.state.record(principal, f"{VM}/{action}/action", vm.id, "Accepted", 202, correlation_id, operation.id)
        return Reply(202, None, {
            "Azure-AsyncOperation": self._operation_url(call, operation, api_version, results=False),
            "Location": self._operation_url(call, operation, api_version, results=True),
            "Retry-After": str(self.operation_retry_after),
        })

    def _site_action(self, site: Resource, action: str, correlation_id: str, principal: Principal) -> Reply:
        # App Service restarts synchronously from the caller's point of view: 200 and an empty body.
        if action == "restart":
            site.record_restart()
            site.power_state = "Running"
        else:
            site.power_state = "Running" if action == "start" else "Stopped"
        self.state.record(principal, f"{SITE}/{action}/action", site.id, "Succeeded", 200, correlation_id)
        return Reply(200, None)

    def _update_scale_set(self, call: Call, scale_set: Resource, update: dict[str, Any], api_version: str,
                          correlation_id: str, principal: Principal) -> Reply:
        sku = update.get("sku")
        if sku is not None and not isinstance(sku, dict):
            raise errors.invalid_parameter("sku", "The value of parameter sku is invalid.")
        capacity = (sku or {}).get("capacity", (scale_set.sku or {}).get("capacity"))
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 0 or capacity > 1000:
            raise errors.invalid_parameter("sku.capacity", "The value of parameter sku.capacity is invalid.")
        tags = update.get("tags")
        # Compute answers a scale set update with 200 and the goal state (provisioningState Updating), and
        # reports the operation through Azure-AsyncOperation; the instances follow when it completes.
        scale_set.sku = {**(scale_set.sku or {}), **(sku or {}), "capacity": capacity}
        if isinstance(tags, dict):
            scale_set.tags = {str(k): str(v) for k, v in tags.items()}
        scale_set.provisioning_state = "Updating"

        def complete() -> None:
            scale_set.provisioning_state = "Succeeded"
            scale_set.properties["instanceCount"] = capacity

        operation = self.state.start_operation("Microsoft.Compute", scale_set, f"{VMSS}/write", principal,
                                               correlation_id, complete)
        self.state.record(principal, f"{VMSS}/write", scale_set.id, "Accepted", 200, correlation_id, operation.id)
        return Reply(200, scale_set.arm_json(), {
            "Azure-AsyncOperation": self._operation_url(call, operation, api_version, results=False),
            "Retry-After": str(self.operation_retry_after),
        })

    # ---- long-running operations ---------------------------------------------------------------
    def _operation_url(self, call: Call, operation: Operation, api_version: str, *, results: bool) -> str:
        kind = "operationResults" if results else "operations"
        return (f"{call.base_url}/subscriptions/{operation.subscription}/providers/{operation.namespace}/locations/"
                f"{operation.location}/{kind}/{operation.id}?p={uuid.uuid4()}&api-version={api_version}")

    def _operation(self, call: Call, operation_id: str, results: bool) -> Reply:
        if call.method != "GET":
            raise errors.method_not_allowed(call.method)
        operation = self.state.poll(operation_id)
        if operation is None:
            raise errors.operation_not_found(operation_id)
        retry = {"Retry-After": str(self.operation_retry_after)}
        if not results:
            return Reply(200, operation.status_json(), retry if operation.status == "InProgress" else {})
        if operation.status == "InProgress":
            return Reply(202, None, {**retry, "Location": f"{call.base_url}{call.path}?{call.query_string}"})
        if operation.status == "Failed" and operation.failure is not None:
            return Reply(500, {"error": {"code": operation.failure.code, "message": operation.failure.message}})
        return Reply(200, None)


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as error:
        raise errors.invalid_request_content(str(error)) from error
    if not isinstance(value, dict):
        raise errors.invalid_request_content("the body must be a JSON object")
    return value

