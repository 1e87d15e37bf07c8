"""The action catalog: what a runbook may ask ARM to do, declared as data (`config/actions.json`).

Each action names its ARM operation (method, path relative to the target resource, api-version, body
template), its parameters as JSON Schema, every permission it needs, whether it is long-running, its
risk and impact for the approver and, for a write, the read that previews it. The file is versioned and
validated as a whole at start-up; every mistake names the file, the entry and the problem. Some actions
are refused whatever the file says (deletes, role assignments, locks, Key Vault secrets): an agent's
gate must never be the way to remove resources or to change who may do what.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from shared.core.errors import ConfigError
from shared.core.model import ActionKind

ANY_TYPE = "*"  # an action that applies to any resource (resource health, metrics, activity log)
PARAMETER_TYPES = frozenset({"string", "integer", "number", "boolean", "array"})
RISKS = ("low", "medium", "high")
METHODS = frozenset({"GET", "POST", "PUT", "PATCH"})

# What no catalog may contain, and why; matched case-insensitively against method, permissions,
# resource type and path.
REFUSED: tuple[tuple[str, str], ...] = (
    ("microsoft.authorization/roleassignments",
     "role assignments change who may do what; the gate never grants access"),
    ("microsoft.authorization/locks", "locks protect resources from change; the gate never removes or sets them"),
    ("microsoft.keyvault/vaults/secrets", "Key Vault secrets are credentials; the gate never reads or writes them"),
)

_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_TYPE = re.compile(r"^[A-Za-z0-9]+(\.[A-Za-z0-9]+)+(/[A-Za-z0-9]+)+$")
_PERMISSION = re.compile(r"^[A-Za-z0-9]+(\.[A-Za-z0-9]+)+(/[A-Za-z0-9*]+)+$")
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_.]*)(?::([A-Za-z][A-Za-z0-9_]*))?\}")
_PATH = re.compile(r"^(/[A-Za-z0-9._{}:-]+)*$")
BUILT_INS = frozenset({"target.id", "target.subscription"})
FUNCTIONS = frozenset({"hoursAgo"})  # {hoursAgo:param}: now minus that many hours, ISO 8601


@dataclass(frozen=True)
class Change:
    """One field a write changes: a JSON pointer into the preview read, and where its new value comes from."""

    field: str
    label: str
    parameter: str | None = None
    constant: Any = None

    def after(self, parameters: Mapping[str, Any]) -> Any:
        return parameters.get(self.parameter) if self.parameter is not None else self.constant


@dataclass(frozen=True)
class Preview:
    """The read that shows the current state of what a write will change."""

    path: str
    api_version: str
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class ActionSpec:
    name: str
    kind: ActionKind
    permissions: tuple[str, ...]
    resource_type: str
    method: str
    path_suffix: str
    api_version: str
    description: str
    long_running: bool = False
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    body_template: Any = None
    query_template: dict[str, str] = field(default_factory=dict)
    subscription_scope: bool = False  # the path is relative to the target's subscription, not the target
    risk: str = "low"
    impact: str = ""
    preview: Preview | None = None

    @property
    def permission(self) -> str:
        """The primary permission: the one ARM checks on the operation itself."""
        return self.permissions[0]

    def applies_to(self, resource_type: str) -> bool:
        return self.resource_type == ANY_TYPE or self.resource_type.lower() == resource_type.lower()

    def problems(self, parameters: Mapping[str, Any]) -> list[str]:
        """Why these parameters cannot be used (empty when they can), each naming the parameter."""
        validator = Draft202012Validator(self.parameters)
        found = []
        for error in sorted(validator.iter_errors(dict(parameters)), key=lambda e: list(e.absolute_path)):
            where = ".".join(str(p) for p in error.absolute_path)
            if not where and error.validator == "required":
                where = str(error.message).split("'")[1] if "'" in error.message else ""
            if not where and error.validator == "additionalProperties":
                found.append(f"unknown parameter: {error.message}")
                continue
            found.append(f"parameter {where!r}: {error.message}")
        return found

    def body(self, parameters: Mapping[str, Any], now: dt.datetime | None = None) -> Any:
        if self.body_template is None:
            return None
        return _fill(self.body_template, parameters, "", now)

    def request_path(self, resource_id: str, parameters: Mapping[str, Any]) -> str:
        base = f"/subscriptions/{subscription_of(resource_id)}" if self.subscription_scope else resource_id
        return base + str(_fill(self.path_suffix, parameters, resource_id, None))

    def query(self, resource_id: str, parameters: Mapping[str, Any], now: dt.datetime) -> dict[str, str]:
        query = {k: str(_fill(v, parameters, resource_id, now)) for k, v in self.query_template.items()}
        return {"api-version": self.api_version, **query}

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": self.name, "description": self.description, "kind": self.kind.value,
            "resourceType": self.resource_type,
            "operation": {"method": self.method, "path": self.path_suffix, "apiVersion": self.api_version,
                          "scope": "subscription" if self.subscription_scope else "resource",
                          **({"body": self.body_template} if self.body_template is not None else {}),
                          **({"query": self.query_template} if self.query_template else {})},
            "parameters": self.parameters, "permissions": list(self.permissions), "longRunning": self.long_running,
            "risk": self.risk, "impact": self.impact,
        }
        if self.preview is not None:
            document["preview"] = {
                "read": {"path": self.preview.path, "apiVersion": self.preview.api_version},
                "changes": [{"field": c.field, "label": c.label,
                             "after": {"parameter": c.parameter} if c.parameter is not None
                             else {"constant": c.constant}} for c in self.preview.changes]}
        return document


@dataclass(frozen=True)
class Catalog(Mapping[str, ActionSpec]):
    version: int
    actions: Mapping[str, ActionSpec]
    source: str

    def __getitem__(self, name: str) -> ActionSpec:
        return self.actions[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.actions)

    def __len__(self) -> int:
        return len(self.actions)

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version, "actions": [a.as_json() for a in self.actions.values()]}


def load_catalog(path: Path) -> Catalog:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(str(path), "(file)", f"cannot be read: {error.strerror}") from None
    return parse_catalog(text, str(path))


def parse_catalog(text: str, source: str) -> Catalog:
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ConfigError(source, "(file)", f"is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(source, "(file)", "must be a JSON object with 'version' and 'actions'")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(source, "version", "must be a positive whole number, raised with every change")
    raw_actions = document.get("actions")
    if not isinstance(raw_actions, list) or not raw_actions:
        raise ConfigError(source, "actions", "must be a non-empty list")
    actions: dict[str, ActionSpec] = {}
    for i, raw in enumerate(raw_actions):
        entry = f"actions[{i}]"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            entry = f"actions[{raw['name']}]"
        spec = _action(raw, entry, source)
        if spec.name in actions:
            raise ConfigError(source, entry, f"name {spec.name!r} is used twice")
        actions[spec.name] = spec
    return Catalog(version, actions, source)


def _action(raw: Any, entry: str, source: str) -> ActionSpec:
    def fail(problem: str, where: str = "") -> ConfigError:
        return ConfigError(source, f"{entry}{where}", problem)

    if not isinstance(raw, dict):
        raise fail("must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail("needs a 'name' like 'vm.restart' (lower case, dotted)")
    try:
        kind = ActionKind(str(raw.get("kind")))
    except ValueError:
        raise fail(f"kind {raw.get('kind')!r} is not 'read' or 'write'", ".kind") from None
    description = _text(raw.get("description"), fail, ".description", 200)
    resource_type = raw.get("resourceType")
    if not isinstance(resource_type, str) or not (resource_type == ANY_TYPE or _TYPE.match(resource_type)):
        raise fail("must be a resource type like 'Microsoft.Compute/virtualMachines', or '*'", ".resourceType")
    operation = raw.get("operation")
    if not isinstance(operation, dict):
        raise fail("must be an object with 'method', 'path' and 'apiVersion'", ".operation")
    permissions = raw.get("permissions")
    if not isinstance(permissions, list) or not permissions:
        raise fail("is missing: list every ARM permission the action needs", ".permissions")
    for p in permissions:
        if not isinstance(p, str) or not _PERMISSION.match(p):
            raise fail(f"{p!r} is not an ARM permission like 'Microsoft.Compute/virtualMachines/read'",
                       ".permissions")
    method = str(operation.get("method", "")).upper()
    path = operation.get("path", "")
    _refuse(method, [str(p) for p in permissions], resource_type, str(path), fail)
    schema = _parameters(raw.get("parameters", {"type": "object", "properties": {}}), fail)
    properties: dict[str, Any] = schema.get("properties", {})
    api_version, body, query, scope = _operation(operation, method, path, kind, properties, fail)
    long_running = raw.get("longRunning", False)
    if not isinstance(long_running, bool):
        raise fail("must be true or false", ".longRunning")
    risk = raw.get("risk")
    if risk not in RISKS:
        raise fail(f"must be one of {', '.join(RISKS)}", ".risk")
    impact = _text(raw.get("impact"), fail, ".impact", 160)
    preview = _preview(raw.get("preview"), kind, properties, fail)
    return ActionSpec(
        name=name, kind=kind, permissions=tuple(permissions), resource_type=resource_type, method=method,
        path_suffix=path, api_version=api_version, description=description, long_running=long_running,
        parameters=schema, body_template=body, query_template=query,
        subscription_scope=scope == "subscription", risk=risk, impact=impact, preview=preview)


def _operation(operation: dict[str, Any], method: str, path: Any, kind: ActionKind, properties: dict[str, Any],
               fail: Any) -> tuple[str, Any, dict[str, str], str]:
    if method not in METHODS:
        raise fail(f"method {method or None!r} is not one of {', '.join(sorted(METHODS))}", ".operation.method")
    if kind is ActionKind.READ and method != "GET":
        raise fail("a read must be a GET: anything else can change state", ".operation.method")
    if kind is ActionKind.WRITE and method == "GET":
        raise fail("a write cannot be a GET", ".operation.method")
    if not isinstance(path, str) or not _PATH.match(path) or ".." in path:
        raise fail("must be '' or a path like '/restart' relative to the target resource", ".operation.path")
    api_version = operation.get("apiVersion")
    if not isinstance(api_version, str) or not _API_VERSION.match(api_version):
        raise fail("must be an ARM api-version like '2024-07-01'", ".operation.apiVersion")
    scope = operation.get("scope", "resource")
    if scope not in ("resource", "subscription"):
        raise fail("must be 'resource' or 'subscription'", ".operation.scope")
    body = operation.get("body")
    if body is not None and (method == "GET" or not isinstance(body, dict)):
        raise fail("must be an object, and only for a POST, PUT or PATCH", ".operation.body")
    query = operation.get("query", {})
    if not isinstance(query, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in query.items()):
        raise fail("must be an object of strings", ".operation.query")
    _check_placeholders(path, properties, fail, ".operation.path", in_path=True)
    _check_placeholders(body, properties, fail, ".operation.body")
    _check_placeholders(query, properties, fail, ".operation.query")
    return api_version, body, dict(query), str(scope)


def _refuse(method: str, permissions: list[str], resource_type: str, path: str, fail: Any) -> None:
    if method == "DELETE":
        raise fail("deletes are refused: the gate never removes resources (method DELETE)", ".operation.method")
    for permission in permissions:
        if permission.lower().endswith("/delete"):
            raise fail(f"deletes are refused: the gate never removes resources ({permission})", ".permissions")
    texts = [p.lower() for p in permissions] + [resource_type.lower()]
    segments = [s.lower() for s in path.split("/") if s]
    for fragment, why in REFUSED:
        child = fragment.rsplit("/", 1)[1]
        if any(fragment in text for text in texts) or child in segments:
            raise fail(f"refused: {why} ({fragment})")


def _text(value: Any, fail: Any, where: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or "\n" in value or len(value) > limit:
        raise fail(f"must be one line of text for a person, at most {limit} characters", where)
    return value


def _parameters(schema: Any, fail: Any) -> dict[str, Any]:
    where = ".parameters"
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise fail('must be a JSON Schema object: {"type": "object", "properties": {...}}', where)
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        raise fail("'properties' must be an object", where)
    for name, prop in properties.items():
        at = f"{where}.{name}"
        kind = prop.get("type") if isinstance(prop, dict) else None
        if kind not in PARAMETER_TYPES:
            raise fail(f"unknown parameter type {kind!r}; use one of {', '.join(sorted(PARAMETER_TYPES))}", at)
        bounded = {
            "integer": "minimum" in prop and "maximum" in prop,
            "number": "minimum" in prop and "maximum" in prop,
            "string": any(k in prop for k in ("enum", "pattern", "maxLength")),
            "array": "maxItems" in prop and isinstance(prop.get("items"), dict),
            "boolean": True,
        }[kind]
        if not bounded:
            raise fail(f"a {kind} parameter needs bounds (minimum and maximum; enum, pattern or maxLength; "
                       "maxItems and items)", at)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        raise fail(f"is not a valid JSON Schema: {error.message}", where) from None
    for required in schema.get("required", []):
        if required not in properties:
            raise fail(f"requires {required!r}, which is not among its properties", where)
    return dict(schema)


def _check_placeholders(template: Any, properties: Mapping[str, Any], fail: Any, where: str,
                        in_path: bool = False) -> None:
    for text in _strings_in(template):
        for match in _PLACEHOLDER.finditer(text):
            name, argument = match.group(1), match.group(2)
            if argument is not None:
                if name not in FUNCTIONS or argument not in properties:
                    raise fail(f"{match.group(0)} is not a known function of a declared parameter", where)
                continue
            if name in BUILT_INS:
                continue
            if name not in properties:
                raise fail(f"{match.group(0)} names no declared parameter", where)
            if in_path and not (properties[name].get("type") == "string" and "pattern" in properties[name]):
                # A value spliced into a URL path must not be able to walk to another resource.
                raise fail(f"path parameter {name!r} must be a string with a 'pattern'", where)


def _strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings_in(item)


def _preview(raw: Any, kind: ActionKind, properties: Mapping[str, Any], fail: Any) -> Preview | None:
    where = ".preview"
    if kind is ActionKind.READ:
        if raw is not None:
            raise fail("only a write has a preview", where)
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("read"), dict):
        raise fail("a write needs a preview: the read that shows the current state, and the fields it changes",
                   where)
    read = raw["read"]
    path = read.get("path", "")
    if not isinstance(path, str) or not _PATH.match(path) or ".." in path:
        raise fail("must be '' or a path relative to the target resource", f"{where}.read.path")
    _check_placeholders(path, properties, fail, f"{where}.read.path", in_path=True)
    api_version = read.get("apiVersion")
    if not isinstance(api_version, str) or not _API_VERSION.match(api_version):
        raise fail("must be an ARM api-version like '2024-07-01'", f"{where}.read.apiVersion")
    raw_changes = raw.get("changes")
    if not isinstance(raw_changes, list):
        raise fail("must be a list of the fields the write changes", f"{where}.changes")
    changes = []
    for j, item in enumerate(raw_changes):
        at = f"{where}.changes[{j}]"
        if not isinstance(item, dict) or not isinstance(item.get("field"), str) \
                or not (item["field"] == "" or item["field"].startswith("/")):
            raise fail("needs a 'field': a JSON pointer into the preview read, like '/sku/capacity'", at)
        after = item.get("after")
        if not isinstance(after, dict) or len(after) != 1 or not ({"parameter", "constant"} & set(after)):
            raise fail('needs an \'after\': {"parameter": name} or {"constant": value}', at)
        parameter = after.get("parameter")
        if "parameter" in after and parameter not in properties:
            raise fail(f"after-value parameter {parameter!r} is not declared", at)
        label = item.get("label", item["field"])
        changes.append(Change(item["field"], str(label), parameter, after.get("constant")))
    return Preview(path, api_version, tuple(changes))


def _fill(template: Any, parameters: Mapping[str, Any], resource_id: str, now: dt.datetime | None) -> Any:
    """The template with its placeholders replaced: a string that is exactly one placeholder takes the
    value with its type (a capacity stays a number); otherwise values are spliced in as text."""
    if isinstance(template, dict):
        return {k: _fill(v, parameters, resource_id, now) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, parameters, resource_id, now) for v in template]
    if not isinstance(template, str):
        return template

    def value(match: re.Match[str]) -> Any:
        name, argument = match.group(1), match.group(2)
        if argument is not None:  # hoursAgo
            moment = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(hours=float(parameters[argument]))
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if name == "target.id":
            return resource_id
        if name == "target.subscription":
            return subscription_of(resource_id)
        return parameters.get(name)

    whole = _PLACEHOLDER.fullmatch(template)
    if whole is not None:
        return value(whole)
    return _PLACEHOLDER.sub(lambda m: str(value(m)), template)


def resource_type_of(resource_id: str) -> str:
    """`/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm` -> the type."""
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    if "providers" not in lowered:
        return ""
    i = len(lowered) - 1 - lowered[::-1].index("providers")
    namespace_and_types = parts[i + 1:]
    if len(namespace_and_types) < 3:
        return ""
    types = [namespace_and_types[0], *namespace_and_types[1::2]]
    return "/".join(types)


def subscription_of(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    return parts[1].lower() if len(parts) > 1 and parts[0].lower() == "subscriptions" else ""


def resource_group_of(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    if "resourcegroups" in lowered:
        i = lowered.index("resourcegroups")
        if i + 1 < len(parts):
            return parts[i + 1].lower()
    return ""
