"""The resource types the stand-in serves and what their operations do, read from the fixture's
`resourceTypes`: a type's operations are data (method, path below the resource, permission, long-running
or not, the state they change while running and once done), so a new catalog action needs a fixture
entry, not code.

An effect maps a target to a value. A target is a JSON pointer into the resource's ARM body
(`/sku/capacity`, `/properties/state`) or one of the facts ARM keeps outside it (`powerState`,
`provisioningState`). A value is a literal or `{"fromBody": "/pointer"}` into the request's body (an
effect whose body value is absent is skipped, as a PATCH leaves what it does not name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import errors

FACTS = frozenset({"powerState", "provisioningState"})
REPLIES = frozenset({"accepted", "resource", "empty"})
VIEWS = frozenset({"resource", "instanceView"})


@dataclass(frozen=True)
class Rule:
    """A bound on a body value; a value outside it is ARM's InvalidParameter naming the field."""

    pointer: str
    type: str
    minimum: float | None = None
    maximum: float | None = None

    def check(self, body: dict[str, Any]) -> None:
        found, value = lookup(body, self.pointer)
        if not found:
            return
        target = self.pointer.strip("/").replace("/", ".")
        kinds = {"integer": int, "string": str, "array": list, "object": dict}
        expected = kinds.get(self.type, object)
        wrong_type = not isinstance(value, expected) or (self.type == "integer" and isinstance(value, bool))
        out_of_range = not wrong_type and self.type == "integer" and (
            (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum))
        if wrong_type or out_of_range:
            raise errors.invalid_parameter(target, f"The value of parameter {target} is invalid.")


@dataclass(frozen=True)
class OperationSpec:
    method: str
    path: str  # below the resource, lower case; "" for the resource itself
    permission: str  # relative to the type ("restart/action") or absolute ("Microsoft.X/y/read")
    long_running: bool = False
    reply: str = "empty"  # accepted: 202 + operation headers; resource: the body; empty: 200, no body
    returns: str = ""  # for a GET: the view it answers with
    during: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    refuse_when: dict[str, list[Any]] = field(default_factory=dict)
    refusal: str = ""
    rules: tuple[Rule, ...] = ()
    counts_restart: bool = False

    @property
    def is_write(self) -> bool:
        return self.method != "GET"

    def full_permission(self, resource_type: str) -> str:
        return self.permission if "." in self.permission.split("/", 1)[0] else f"{resource_type}/{self.permission}"


@dataclass(frozen=True)
class TypeSpec:
    name: str
    operations: tuple[OperationSpec, ...]
    default_power_state: str | None = None

    def operation(self, method: str, path: str) -> OperationSpec | None:
        wanted = path.lower()
        if method == "GET" and wanted == "":
            found = next((o for o in self.operations if o.method == "GET" and o.path == ""), None)
            return found or OperationSpec("GET", "", "read", returns="resource")
        return next((o for o in self.operations if o.method == method and o.path == wanted), None)

    def knows_path(self, path: str) -> bool:
        return any(o.path == path.lower() for o in self.operations)


def types_from_fixture(raw: dict[str, Any]) -> dict[str, TypeSpec]:
    """Type name (lower case) to its spec; a mistake in the fixture is a ValueError naming the entry."""
    types: dict[str, TypeSpec] = {}
    for name, body in raw.items():
        operations = []
        for i, op in enumerate(body.get("operations", [])):
            where = f"resourceTypes.{name}.operations[{i}]"
            reply = op.get("reply", "accepted" if op.get("longRunning") and op["method"] == "POST" else "empty")
            if reply not in REPLIES:
                raise ValueError(f"{where}: reply must be one of {sorted(REPLIES)}")
            if op.get("returns") and op["returns"] not in VIEWS:
                raise ValueError(f"{where}: returns must be one of {sorted(VIEWS)}")
            for target in (*op.get("during", {}), *op.get("after", {})):
                if target not in FACTS and not target.startswith("/"):
                    raise ValueError(f"{where}: effect target {target!r} is neither a JSON pointer nor a fact")
            rules = tuple(Rule(p, r["type"], r.get("minimum"), r.get("maximum"))
                          for p, r in op.get("rules", {}).items())
            operations.append(OperationSpec(
                method=op["method"].upper(), path=op.get("path", "").strip("/").lower(), permission=op["permission"],
                long_running=bool(op.get("longRunning", False)), reply=reply, returns=op.get("returns", ""),
                during=dict(op.get("during", {})), after=dict(op.get("after", {})),
                refuse_when={k: list(v) for k, v in op.get("refuseWhen", {}).items()}, refusal=op.get("refusal", ""),
                rules=rules, counts_restart=bool(op.get("countsRestart", False))))
        types[name.lower()] = TypeSpec(name, tuple(operations), body.get("defaultPowerState"))
    return types


def lookup(document: Any, pointer: str) -> tuple[bool, Any]:
    """(found, value) at a JSON pointer."""
    current = document
    for token in [t.replace("~1", "/").replace("~0", "~") for t in pointer.strip("/").split("/") if t]:
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list) and token.isdigit() and int(token) < len(current):
            current = current[int(token)]
        else:
            return False, None
    return True, current


def resolve(value: Any, body: dict[str, Any]) -> tuple[bool, Any]:
    if isinstance(value, dict) and set(value) == {"fromBody"}:
        return lookup(body, value["fromBody"])
    return True, value
