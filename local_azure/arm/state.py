"""Everything the stand-in knows, behind one lock: the fixture's resources and role assignments, plus
locks, faults, running operations and the activity log that tests inspect."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .faults import Fault
from .operations import types_from_fixture
from .rbac import AccessControl, RoleDefinition, is_within, normalise_scope
from .resources import Resource, ResourceGroup, resource_from_fixture, utc_now
from .tokens import Principal

DEFAULT_FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "arm.json"
LOCK_LEVELS = ("ReadOnly", "CanNotDelete")


@dataclass(frozen=True)
class ManagementLock:
    name: str
    scope: str
    level: str
    notes: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"id": f"{self.scope}/providers/Microsoft.Authorization/locks/{self.name}", "name": self.name,
                "type": "Microsoft.Authorization/locks",
                "properties": {"level": self.level, "notes": self.notes}, "scope": self.scope}


@dataclass
class Operation:
    """A long-running operation: answers InProgress to a number of polls (or for a time), then ends."""

    id: str
    namespace: str
    location: str
    subscription: str
    resource_id: str
    action: str
    principal: Principal
    correlation_id: str
    polls_left: int
    deadline: float | None  # monotonic time it ends at, when operations run for a duration
    complete: Callable[[], None]
    failure: Fault | None = None
    status: str = "InProgress"
    start_time: str = field(default_factory=utc_now)
    end_time: str | None = None

    def status_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"startTime": self.start_time, "status": self.status, "name": self.id}
        if self.end_time:
            body["endTime"] = self.end_time
        if self.status == "Failed" and self.failure is not None:
            body["error"] = {"code": self.failure.code, "message": self.failure.message}
        return body


class ArmState:
    def __init__(self, fixture_path: Path | None, operation_polls: int, operation_seconds: float | None) -> None:
        self.fixture_path = fixture_path or DEFAULT_FIXTURE
        self.operation_polls = operation_polls
        self.operation_seconds = operation_seconds
        self.lock = threading.RLock()
        self.held_answers: list[tuple[str, threading.Event]] = []
        self.load()

    # ---- fixture -------------------------------------------------------------------------------
    def load(self) -> None:
        fixture = json.loads(self.fixture_path.read_text())
        with self.lock:
            self.tenant_id: str = fixture.get("tenantId", "")
            self.subscriptions: dict[str, dict[str, Any]] = {
                s["subscriptionId"].lower(): s for s in fixture.get("subscriptions", [])}
            self.resource_groups: dict[str, ResourceGroup] = {}
            for group in fixture.get("resourceGroups", []):
                rg = ResourceGroup(group["subscriptionId"], group["name"], group.get("location", "westeurope"),
                                   dict(group.get("tags", {})))
                self.resource_groups[rg.id.lower()] = rg
            self.types = types_from_fixture(fixture.get("resourceTypes", {}))
            self.resources: dict[str, Resource] = {}
            for entry in fixture.get("resources", []):
                resource = resource_from_fixture(entry["subscriptionId"], entry, self.types)
                self.resources[resource.id.lower()] = resource
            custom = [RoleDefinition(r["id"], r["roleName"], tuple(r.get("actions", [])),
                                     tuple(r.get("notActions", [])))
                      for r in fixture.get("roleDefinitions", [])]
            self.access = AccessControl(custom)
            for assignment in fixture.get("roleAssignments", []):
                self.access.assign(assignment["principalId"], assignment["role"], assignment["scope"],
                                   assignment.get("name"))
            self.locks: dict[str, ManagementLock] = {}
            for lock in fixture.get("locks", []):
                self.add_lock(lock["scope"], lock["level"], lock.get("name"), lock.get("notes", ""))
            self.faults: list[Fault] = []
            self.operations: dict[str, Operation] = {}
            self.activity: list[dict[str, Any]] = []

    # ---- locks ---------------------------------------------------------------------------------
    def add_lock(self, scope: str, level: str, name: str | None = None, notes: str = "") -> ManagementLock:
        if level not in LOCK_LEVELS:
            raise ValueError(f"lock level must be one of {', '.join(LOCK_LEVELS)}")
        lock = ManagementLock(name or f"lock-{uuid.uuid4().hex[:8]}", normalise_scope(scope), level, notes)
        with self.lock:
            self.locks[lock.name] = lock
        return lock

    def locks_over(self, scope: str, levels: tuple[str, ...]) -> list[str]:
        with self.lock:
            return [lock.scope for lock in self.locks.values() if lock.level in levels and is_within(scope, lock.scope)]

    # ---- faults --------------------------------------------------------------------------------
    def take_fault(self, kind: str, principal: Principal, scope: str | None, method: str) -> Fault | None:
        """The first armed fault of this kind that matches, spending one of its uses."""
        with self.lock:
            for fault in self.faults:
                if fault.kind != kind or not fault.applies_to(principal.object_id, scope, method):
                    continue
                if kind == "claims_challenge" and fault.satisfied_by(principal.claims):
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                return fault
            return None

    # ---- operations ----------------------------------------------------------------------------
    def start_operation(self, namespace: str, resource: Resource, action: str, principal: Principal,
                        correlation_id: str, complete: Callable[[], None]) -> Operation:
        failure = self.take_fault("operation_failure", principal, resource.id, "POST")
        longer = self.take_fault("long_operation", principal, resource.id, "POST")
        seconds = longer.seconds if longer is not None else self.operation_seconds
        deadline = time.monotonic() + seconds if seconds is not None else None
        operation = Operation(str(uuid.uuid4()), namespace, resource.location, resource.subscription, resource.id,
                              action, principal, correlation_id, self.operation_polls, deadline, complete, failure)
        with self.lock:
            self.operations[operation.id] = operation
        return operation

    def poll(self, operation_id: str) -> Operation | None:
        with self.lock:
            operation = self.operations.get(operation_id)
            if operation is None or operation.status != "InProgress":
                return operation
            if operation.deadline is None:
                operation.polls_left -= 1
                if operation.polls_left < 0:
                    self._finish(operation)
            else:
                self._finish_if_due(operation)
            return operation

    # ---- answers held by slow_answer -------------------------------------------------------------
    def hold_answer(self, seconds: float, scope: str) -> None:
        """Keep the caller's answer to a request on `scope` back for `seconds`, or until released."""
        held = (scope, threading.Event())
        with self.lock:
            self.held_answers.append(held)
        try:
            held[1].wait(seconds)
        finally:
            with self.lock:
                self.held_answers.remove(held)

    def answers_held(self, within: str | None = None) -> int:
        with self.lock:
            return sum(1 for scope, _ in self.held_answers if within is None or is_within(scope, within))

    def release_answers(self, within: str | None = None) -> None:
        with self.lock:
            for scope, released in self.held_answers:
                if within is None or is_within(scope, within):
                    released.set()

    def settle_due_operations(self) -> None:
        """Operations that run for a duration end whether or not anyone polls them, as in Azure."""
        with self.lock:
            for operation in list(self.operations.values()):
                if operation.status == "InProgress" and operation.deadline is not None:
                    self._finish_if_due(operation)

    def _finish_if_due(self, operation: Operation) -> None:
        if operation.deadline is not None and time.monotonic() >= operation.deadline:
            self._finish(operation)

    def _finish(self, operation: Operation) -> None:
        operation.end_time = utc_now()
        if operation.failure is not None:
            operation.status = "Failed"
            self.record(operation.principal, operation.action, operation.resource_id, "Failed", 200,
                        operation.correlation_id, operation.id, operation.failure.code)
            resource = self.resources.get(operation.resource_id.lower())
            if resource is not None:
                resource.provisioning_state = "Failed"
            return
        operation.complete()
        operation.status = "Succeeded"
        self.record(operation.principal, operation.action, operation.resource_id, "Succeeded", 200,
                    operation.correlation_id, operation.id)

    # ---- activity log --------------------------------------------------------------------------
    def record(self, principal: Principal, action: str, resource_id: str, outcome: str, http_status: int,
               correlation_id: str, operation_id: str | None = None, code: str | None = None) -> None:
        with self.lock:
            self.activity.append({
                "time": utc_now(), "principalId": principal.object_id, "principalName": principal.display_name,
                "appId": principal.app_id, "action": action, "resourceId": resource_id, "outcome": outcome,
                "httpStatus": http_status, "code": code, "operationId": operation_id,
                "correlationId": correlation_id,
            })
