"""ARM's REST surface over the stand-in's state: authentication, api-version, faults, RBAC, locks,
existence, then the resource's own behaviour, in the order ARM's gateway and resource providers apply them."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .errors import ArmError
from .operations import OperationSpec
from .rbac import is_within
from .resources import VM, Resource, utc_now
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
        slow = self.state.take_fault("slow_answer", principal, scope, call.method) if reply.status < 400 else None
        if slow is not None:  # done, and the answer waits: a client gone meanwhile never learns the outcome
            self.state.hold_answer(slow.seconds, scope)
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
            case ["subscriptions", _, "providers", "microsoft.insights", "eventtypes", "management", "values"]:
                return self._activity_log(call, principal, segments[1])
            case ["subscriptions", _, "resourcegroups", _, "providers", _, _, _, *_]:
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
    def _locate(self, segments: list[str], api_version: str) -> tuple[str, str, list[str]]:
        """(the resource's type, its id as the client spelt it, the path below it) from a request path
        `/subscriptions/s/resourceGroups/g/providers/Ns/type/name[/childType/childName...][/rest]`."""
        namespace, type_name = segments[5], segments[6]
        resource_type = f"{namespace}/{type_name}"
        spec = self.state.types.get(resource_type.lower())
        if spec is None:
            raise errors.invalid_resource_type(type_name, namespace, api_version)
        end = 8
        while end + 1 < len(segments) and segments[end].lower() != "providers":
            child = self.state.types.get(f"{spec.name}/{segments[end]}".lower())
            if child is None or spec.knows_path("/".join(segments[end:]).lower()):
                break
            spec, end = child, end + 2
        return spec.name, "/" + "/".join(segments[:end]), segments[end:]

    def _resource(self, call: Call, principal: Principal, segments: list[str], api_version: str,
                  correlation_id: str) -> Reply:
        subscription, group = segments[1], segments[3]
        resource_type, scope, rest = self._locate(segments, api_version)
        self._require_subscription(subscription, principal)
        if rest and rest[0].lower() == "providers":
            return self._extension(call, principal, resource_type, scope, rest[1:], api_version)
        spec = self.state.types[resource_type.lower()]
        path = "/".join(rest)
        operation = spec.operation(call.method, path)
        if operation is None:
            if not path:
                raise errors.method_not_allowed(call.method)
            if spec.knows_path(path):
                raise errors.method_not_allowed(call.method)
            namespace, _, type_name = resource_type.partition("/")
            raise errors.invalid_resource_type(f"{type_name.rsplit('/', 1)[-1]}/{path}", namespace, api_version)
        permission = operation.full_permission(resource_type)
        body = _json_body(call.body) if operation.is_write else {}
        # ARM authorises over the resource id as the client spelt it, and names it so in AuthorizationFailed.
        try:
            self._authorise(principal, permission, scope)
            if operation.is_write:
                locked = self.state.locks_over(scope, ("ReadOnly",))
                if locked:
                    raise errors.scope_locked(scope, locked)
            with self.state.lock:
                if f"/subscriptions/{subscription}/resourcegroups/{group}".lower() not in self.state.resource_groups:
                    raise errors.resource_group_not_found(group)
                resource = self.state.resources.get(scope.lower())
                if resource is None:
                    raise errors.resource_not_found(resource_type, scope.rsplit("/", 1)[-1], group)
                if not operation.is_write:
                    return self._view(call, resource, operation)
                return self._write(call, resource, operation, permission, body, api_version, correlation_id,
                                   principal)
        except ArmError as error:
            if operation.is_write:
                self.state.record(principal, permission, scope, "Failed", error.status, correlation_id,
                                  code=error.code)
            raise

    def _view(self, call: Call, resource: Resource, operation: OperationSpec) -> Reply:
        if operation.returns == "instanceView":
            return Reply(200, resource.instance_view())
        expand = (call.param("$expand") or "").lower() == "instanceview"
        return Reply(200, resource.arm_json(expand_instance_view=expand and resource.type == VM))

    def _write(self, call: Call, resource: Resource, operation: OperationSpec, permission: str,
               body: dict[str, Any], api_version: str, correlation_id: str, principal: Principal) -> Reply:
        for fact, refused in operation.refuse_when.items():
            if (resource.power_state if fact == "powerState" else resource.provisioning_state) in refused:
                raise errors.operation_not_allowed(operation.refusal.format(name=resource.name))
        for rule in operation.rules:
            rule.check(body)
        resource.apply(operation.during, body)

        def complete() -> None:
            resource.apply(operation.after, body)
            if operation.counts_restart:
                resource.record_restart()
            resource.applied.append(permission)

        if not operation.long_running:
            complete()
            self.state.record(principal, permission, resource.id, "Succeeded", 200, correlation_id)
            return Reply(200, resource.arm_json() if operation.reply == "resource" else None)
        namespace = resource.type.split("/", 1)[0]
        started = self.state.start_operation(namespace, resource, permission, principal, correlation_id, complete)
        status = 202 if operation.reply == "accepted" else 200
        self.state.record(principal, permission, resource.id, "Accepted", status, correlation_id, started.id)
        headers = {"Azure-AsyncOperation": self._operation_url(call, started, api_version, results=False),
                   "Retry-After": str(self.operation_retry_after)}
        if operation.reply == "accepted":
            headers["Location"] = self._operation_url(call, started, api_version, results=True)
            return Reply(202, None, headers)
        # Compute answers a scale set update with 200 and the goal state (provisioningState Updating), and
        # reports the operation through Azure-AsyncOperation; the instances follow when it completes.
        return Reply(200, resource.arm_json(), headers)

    # ---- extension resources: health, metrics, permissions ----------------------------------------
    def _extension(self, call: Call, principal: Principal, resource_type: str, scope: str, rest: list[str],
                   api_version: str) -> Reply:
        if call.method != "GET":
            raise errors.method_not_allowed(call.method)
        key = "/".join(rest).lower()
        if key == "microsoft.authorization/permissions":
            return Reply(200, {"value": self._permissions(principal, scope)})
        permission = {"microsoft.resourcehealth/availabilitystatuses/current":
                      "Microsoft.ResourceHealth/availabilityStatuses/read",
                      "microsoft.insights/metrics": "Microsoft.Insights/metrics/read"}.get(key)
        if permission is None:
            raise errors.invalid_resource_type("/".join(rest[1:]), rest[0] if rest else "", api_version)
        self._authorise(principal, permission, scope)
        with self.state.lock:
            resource = self.state.resources.get(scope.lower())
            if resource is None:
                raise errors.resource_not_found(resource_type, scope.rsplit("/", 1)[-1], scope.split("/")[4])
            if key.startswith("microsoft.resourcehealth"):
                return Reply(200, {
                    "id": f"{resource.id}/providers/Microsoft.ResourceHealth/availabilityStatuses/current",
                    "name": "current", "type": "Microsoft.ResourceHealth/AvailabilityStatuses",
                    "location": resource.location,
                    "properties": {"availabilityState": resource.health,
                                   "summary": f"The resource is {resource.health.lower()}.",
                                   "reasonChronicity": "Persistent", "occuredTime": resource.last_restart_time}})
            return self._metrics(call, resource)

    def _permissions(self, principal: Principal, scope: str) -> list[dict[str, Any]]:
        """What `Microsoft.Authorization/permissions` answers: one entry per role assigned to the caller
        at this scope or above."""
        with self.state.lock:
            access = self.state.access
            entries = [access.roles[a.role_definition_id] for a in access.assignments.values()
                       if a.principal_id == principal.object_id.lower() and a.role_definition_id in access.roles
                       and is_within(scope, a.scope)]
        return [{"actions": list(r.actions), "notActions": list(r.not_actions), "dataActions": [],
                 "notDataActions": []} for r in entries]

    def _metrics(self, call: Call, resource: Resource) -> Reply:
        names = [n.strip() for n in (call.param("metricnames") or "").split(",") if n.strip()]
        unknown = [n for n in names if n not in resource.metrics]
        if not names or unknown:
            raise ArmError(400, "BadRequest", f"Failed to find metric configuration for provider: "
                                              f"{resource.type.split('/')[0]}, resource type: {resource.type}, "
                                              f"metric: {', '.join(unknown) or '(none)'}")
        interval = call.param("interval") or "PT1M"
        return Reply(200, {"cost": 0, "interval": interval, "namespace": resource.type,
                           "resourceregion": resource.location, "value": [{
                               "id": f"{resource.id}/providers/Microsoft.Insights/metrics/{name}",
                               "type": "Microsoft.Insights/metrics",
                               "name": {"value": name, "localizedValue": name}, "unit": "Unspecified",
                               "timeseries": [{"metadatavalues": [], "data": [
                                   {"timeStamp": utc_now(), "average": value} for value in resource.metrics[name]]}],
                           } for name in names]})

    # ---- the activity log ----------------------------------------------------------------------
    def _activity_log(self, call: Call, principal: Principal, subscription: str) -> Reply:
        if call.method != "GET":
            raise errors.method_not_allowed(call.method)
        self._require_subscription(subscription, principal)
        self._authorise(principal, "Microsoft.Insights/eventtypes/values/read", f"/subscriptions/{subscription}")
        text = call.param("$filter") or ""
        since = re.search(r"eventTimestamp ge '([^']+)'", text)
        if since is None:
            raise ArmError(400, "BadRequest", "The $filter must name a start time: eventTimestamp ge '<time>'.")
        uri = re.search(r"resourceUri eq '([^']+)'", text)
        start = since.group(1).replace("Z", "")
        with self.state.lock:
            entries = [e for e in self.state.activity if e["time"].replace("Z", "") >= start
                       and (uri is None or e["resourceId"].lower() == uri.group(1).lower())]
        return Reply(200, {"value": [{
            "authorization": {"action": e["action"], "scope": e["resourceId"]},
            "caller": e["principalName"] or e["principalId"], "correlationId": e["correlationId"],
            "eventTimestamp": e["time"], "level": "Error" if e["outcome"] == "Failed" else "Informational",
            "operationId": e["operationId"], "operationName": {"value": e["action"], "localizedValue": e["action"]},
            "resourceId": e["resourceId"], "status": {"value": e["outcome"], "localizedValue": e["outcome"]},
            "subStatus": {"value": str(e["httpStatus"])}, "subscriptionId": subscription,
        } for e in reversed(entries)]})

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

