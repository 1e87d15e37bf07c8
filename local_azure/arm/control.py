"""The stand-in's own control surface under `/_standin/` (loopback only): what tests inspect and arrange.

GET resources | resource?id= | activity | operations | faults | role-assignments | locks;
POST faults | role-assignments | locks | reset (JSON bodies); DELETE faults | role-assignments/<name>
(or ?principalId=&role=&scope=) | locks/<name>.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .api import Call, Reply
from .faults import Fault
from .state import ArmState

PREFIX = "/_standin/"


def bad_request(message: str) -> Reply:
    return Reply(400, {"error": {"code": "InvalidRequest", "message": message}})


def not_found(message: str) -> Reply:
    return Reply(404, {"error": {"code": "NotFound", "message": message}})


class ControlApi:
    def __init__(self, state: ArmState) -> None:
        self.state = state
        self._routes: dict[tuple[str, str], Callable[[Call, list[str], Any], Reply]] = {
            ("GET", "resources"): self._resources,
            ("GET", "resource"): self._resource,
            ("GET", "activity"): lambda *_: Reply(200, {"value": list(self.state.activity)}),
            ("GET", "operations"): self._operations,
            ("GET", "faults"): lambda *_: Reply(200, {"value": [f.as_json() for f in self.state.faults]}),
            ("POST", "faults"): self._add_fault,
            ("DELETE", "faults"): self._clear_faults,
            ("GET", "role-assignments"): self._assignments,
            ("POST", "role-assignments"): self._assign,
            ("DELETE", "role-assignments"): self._unassign,
            ("GET", "locks"): lambda *_: Reply(200, {"value": [lock.as_json() for lock in self.state.locks.values()]}),
            ("POST", "locks"): self._add_lock,
            ("DELETE", "locks"): self._remove_lock,
            ("POST", "reset"): self._reset,
        }

    def handle(self, call: Call) -> Reply:
        parts = [p for p in call.path[len(PREFIX):].split("/") if p]
        route = self._routes.get((call.method, parts[0] if parts else ""))
        if route is None:
            return not_found(f"no control endpoint {call.method} {call.path}")
        try:
            body = json.loads(call.body) if call.body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            return bad_request("the body is not JSON")
        try:
            with self.state.lock:
                self.state.settle_due_operations()
                return route(call, parts[1:], body)
        except KeyError as error:
            return bad_request(f"missing field {error}")
        except (ValueError, TypeError) as error:
            return bad_request(str(error))

    def _resources(self, call: Call, rest: list[str], body: Any) -> Reply:
        return Reply(200, {"value": [r.inspection() for r in self.state.resources.values()]})

    def _resource(self, call: Call, rest: list[str], body: Any) -> Reply:
        resource = self.state.resources.get((call.param("id") or "").rstrip("/").lower())
        return Reply(200, resource.inspection()) if resource else not_found("no such resource")

    def _operations(self, call: Call, rest: list[str], body: Any) -> Reply:
        return Reply(200, {"value": [{**o.status_json(), "resourceId": o.resource_id, "action": o.action}
                                     for o in self.state.operations.values()]})

    def _add_fault(self, call: Call, rest: list[str], body: Any) -> Reply:
        fault = Fault.from_json(_object(body))
        self.state.faults.append(fault)
        return Reply(201, fault.as_json())

    def _clear_faults(self, call: Call, rest: list[str], body: Any) -> Reply:
        self.state.faults.clear()
        return Reply(204)

    def _assignments(self, call: Call, rest: list[str], body: Any) -> Reply:
        access = self.state.access
        return Reply(200, {"value": [a.as_json(access.roles) for a in access.assignments.values()]})

    def _assign(self, call: Call, rest: list[str], body: Any) -> Reply:
        spec = _object(body)
        assignment = self.state.access.assign(spec["principalId"], spec["role"], spec["scope"], spec.get("name"))
        return Reply(201, assignment.as_json(self.state.access.roles))

    def _unassign(self, call: Call, rest: list[str], body: Any) -> Reply:
        name = rest[0] if rest else None
        if name is None and call.param("principalId") is None:
            return bad_request("name an assignment, or give principalId (and optionally role and scope)")
        removed = self.state.access.unassign(name, call.param("principalId"), call.param("role"), call.param("scope"))
        if not removed:
            return not_found("no role assignment matched")
        return Reply(200, {"removed": [a.name for a in removed]})

    def _add_lock(self, call: Call, rest: list[str], body: Any) -> Reply:
        spec = _object(body)
        lock = self.state.add_lock(spec["scope"], spec["level"], spec.get("name"), spec.get("notes", ""))
        return Reply(201, lock.as_json())

    def _remove_lock(self, call: Call, rest: list[str], body: Any) -> Reply:
        if not rest:
            return bad_request("name the lock: DELETE /_standin/locks/<name>")
        return Reply(204) if self.state.locks.pop(rest[0], None) else not_found(f"no lock named '{rest[0]}'")

    def _reset(self, call: Call, rest: list[str], body: Any) -> Reply:
        self.state.load()
        return Reply(204)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise TypeError("the body must be a JSON object")
    return body
