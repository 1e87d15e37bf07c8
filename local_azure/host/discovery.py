"""Finding the app's functions the way the Python worker's indexer does: `app.get_functions()`.

Each function's `get_function_json()` is what the worker hands the runtime (plain strings, no enums),
so the host reads triggers and bindings from it and refuses anything it cannot drive, before any
listener starts, rather than leaving a function silently dead.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import threading
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.functions.servicebus import ServiceBusMessageInConverter

SUPPORTED_TRIGGERS = ("serviceBusTrigger", "httpTrigger", "timerTrigger", "mcpToolTrigger")
# Output bindings the host honours besides the trigger: the HTTP response and Service Bus output.
SUPPORTED_OUTPUTS = ("http", "serviceBus")
_APP_SETTING = re.compile(r"%([A-Za-z_][A-Za-z0-9_.:-]*)%")
_INDEX: dict[int, tuple[Any, list[Any]]] = {}
_INDEX_LOCK = threading.Lock()
ALL_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE")


class DiscoveryError(Exception):
    """The app cannot be loaded, or declares something the local host cannot run."""


@dataclass(frozen=True)
class Binding:
    name: str
    type: str
    direction: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    trigger: Binding
    outputs: tuple[Binding, ...]
    user_function: Callable[..., Any]

    @property
    def trigger_type(self) -> str:
        return self.trigger.type

    @property
    def returns_http(self) -> bool:
        return any(binding.type == "http" and binding.name == "$return" for binding in self.outputs)

    # Trigger properties, read the way the runtime reads function.json.
    @property
    def queue_name(self) -> str:
        return str(self.trigger.properties["queueName"])

    @property
    def connection(self) -> str:
        return str(self.trigger.properties.get("connection") or "AzureWebJobsServiceBus")

    @property
    def route(self) -> str:
        return str(self.trigger.properties.get("route") or self.name).strip("/")

    @property
    def methods(self) -> tuple[str, ...]:
        methods = self.trigger.properties.get("methods")
        return tuple(str(method).upper() for method in methods) if methods else ALL_METHODS

    @property
    def auth_level(self) -> str:
        return str(self.trigger.properties.get("authLevel") or "function").lower()

    @property
    def schedule(self) -> str:
        return str(self.trigger.properties["schedule"])

    @property
    def run_on_startup(self) -> bool:
        return bool(self.trigger.properties.get("runOnStartup", False))


def load_app(project_dir: Path, app_reference: str) -> Any:
    """Import `<module>:<attribute>` with the project directory first on `sys.path`, as the worker does."""
    module_name, _, attribute = app_reference.partition(":")
    attribute = attribute or "app"
    project = str(project_dir.resolve())
    if project not in sys.path:
        sys.path.insert(0, project)
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise DiscoveryError(
            f"cannot import {module_name!r} from {project}: {type(error).__name__}: {error}") from error
    app = getattr(module, attribute, None)
    if app is None or not hasattr(app, "get_functions"):
        raise DiscoveryError(f"{app_reference}: no azure.functions.FunctionApp named {attribute!r} in {module_name}")
    return app


def resolve_app_setting_expressions(value: Any, lookup: Callable[[str], str | None]) -> Any:
    """`%NAME%` in a binding property is the value of app setting NAME, resolved by the runtime at startup."""
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        found = lookup(match[1])
        if found is None:
            raise DiscoveryError(f"binding expression %{match[1]}% names an app setting that is not set")
        return found
    return _APP_SETTING.sub(replace, value)


def _indexed(app: Any) -> list[Any]:
    # FunctionApp.get_functions() refuses a second call (it sees its own names again), and the worker
    # indexes once per process; hosts started one after another on the same app share that index.
    with _INDEX_LOCK:
        entry = _INDEX.get(id(app))
        if entry is None or entry[0] is not app:
            entry = _INDEX[id(app)] = (app, list(app.get_functions()))
        return entry[1]


def _check_batch_annotation(function_name: str, parameter: str, user_function: Callable[..., Any]) -> None:
    """The worker refuses to load a batch trigger whose parameter its converter does not take (it knows
    `typing.List[func.ServiceBusMessage]`, not `list[...]`): refused here too, rather than run locally only."""
    try:
        annotation = typing.get_type_hints(user_function).get(parameter)
    except Exception:  # an annotation the host cannot resolve: the worker's problem to report
        return
    if annotation is not None and not ServiceBusMessageInConverter.check_input_type_annotation(annotation):
        raise DiscoveryError(f"function {function_name!r}: the type of {parameter!r} ({annotation}) is not one the "
                             "Python worker takes for a Service Bus batch (typing.List[func.ServiceBusMessage])")


def discover(app: Any, lookup: Callable[[str], str | None] = lambda name: None) -> list[FunctionSpec]:
    specs: list[FunctionSpec] = []
    for function in _indexed(app):
        name = function.get_function_name()
        bindings = [
            Binding(
                name=str(raw["name"]),
                type=str(raw["type"]),
                direction=str(raw["direction"]).upper(),
                properties={key: resolve_app_setting_expressions(value, lookup) for key, value in raw.items()
                            if key not in ("name", "type", "direction")},
            )
            for raw in json.loads(function.get_function_json())["bindings"]
        ]
        triggers = [binding for binding in bindings if binding.type.endswith("Trigger")]
        if len(triggers) != 1:
            raise DiscoveryError(f"function {name!r}: exactly one trigger expected, found {len(triggers)}")
        trigger = triggers[0]
        if trigger.type not in SUPPORTED_TRIGGERS:
            raise DiscoveryError(
                f"function {name!r}: trigger type {trigger.type!r} is not supported by the local host "
                f"(supported: {', '.join(SUPPORTED_TRIGGERS)})")
        if trigger.type == "serviceBusTrigger" and trigger.properties.get("isSessionsEnabled"):
            raise DiscoveryError(f"function {name!r}: session-enabled Service Bus triggers are not supported locally")
        if trigger.type == "serviceBusTrigger" and str(trigger.properties.get("cardinality", "")).lower() == "many":
            _check_batch_annotation(name, trigger.name, function.get_user_function())
        others = [binding for binding in bindings if binding is not trigger]
        unsupported = [binding for binding in others
                       if binding.direction != "OUT" or binding.type not in SUPPORTED_OUTPUTS]
        if unsupported:
            described = ", ".join(f"{binding.type} ({binding.direction.lower()}) {binding.name!r}"
                                  for binding in unsupported)
            raise DiscoveryError(f"function {name!r}: binding not supported by the local host: {described}")
        specs.append(FunctionSpec(
            name=name,
            trigger=trigger,
            outputs=tuple(others),
            user_function=function.get_user_function(),
        ))
    names = [spec.name.lower() for spec in specs]
    if len(set(names)) != len(names):
        raise DiscoveryError(f"two functions share a name: {sorted(names)}")
    return specs
