"""What the Functions runtime reads before it starts the worker: `host.json` and the app settings.

Core Tools puts `local.settings.json` `Values` into the worker's environment before the app is
imported, so code that reads `os.environ` at import time sees them; the host does the same, with
explicit settings passed to it laid over the file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<hours>\d+):(?P<minutes>\d+):(?P<seconds>\d+(?:\.\d+)?)$")


def parse_timespan(text: str) -> float:
    """Seconds in a .NET TimeSpan string as host.json writes them (`00:05:00`, `1.00:00:00`, `00:00:00.80`)."""
    match = _TIMESPAN.match(text.strip())
    if not match:
        raise ValueError(f"not a TimeSpan (d.hh:mm:ss): {text!r}")
    return (
        int(match["days"] or 0) * 86400
        + int(match["hours"]) * 3600
        + int(match["minutes"]) * 60
        + float(match["seconds"])
    )


@dataclass(frozen=True)
class ServiceBusOptions:
    max_concurrent_calls: int = 16
    auto_complete_messages: bool = True
    prefetch_count: int = 0
    max_auto_lock_renewal_seconds: float = 300.0
    max_message_batch_size: int = 1000  # a batch trigger's (cardinality many) largest batch

    @classmethod
    def from_host_json(cls, section: Mapping[str, Any]) -> ServiceBusOptions:
        # The runtime's own defaults when a key is absent (Service Bus extension 5.x).
        renewal = section.get("maxAutoLockRenewalDuration")
        return cls(
            max_concurrent_calls=max(1, int(section.get("maxConcurrentCalls", 16))),
            auto_complete_messages=bool(section.get("autoCompleteMessages", True)),
            prefetch_count=max(0, int(section.get("prefetchCount", 0))),
            max_auto_lock_renewal_seconds=parse_timespan(renewal) if renewal else 300.0,
            max_message_batch_size=max(1, int(section.get("maxMessageBatchSize", 1000))),
        )


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    service_bus: ServiceBusOptions = field(default_factory=ServiceBusOptions)
    function_timeout_seconds: float | None = None
    mcp: dict[str, Any] = field(default_factory=dict)  # extensions.mcp: serverName, serverVersion, instructions

    @classmethod
    def load(cls, project_dir: Path, settings: Mapping[str, str] | None = None) -> HostConfig:
        """host.json, with the runtime's app-setting overrides laid over it: a setting named
        `AzureFunctionsJobHost__extensions__serviceBus__maxConcurrentCalls` sets that host.json value."""
        path = project_dir / "host.json"
        document = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"version": "2.0"}
        if str(document.get("version", "")) != "2.0":
            raise ValueError(f"{path}: the Functions runtime 4.x reads only host.json version 2.0")
        for name, value in (settings or {}).items():
            if name.lower().startswith(_OVERRIDE_PREFIX):
                _override(document, name[len(_OVERRIDE_PREFIX):].split("__"), value)
        extensions = document.get("extensions", {})
        timeout = document.get("functionTimeout")
        return cls(
            route_prefix=str(extensions.get("http", {}).get("routePrefix", "api")).strip("/"),
            service_bus=ServiceBusOptions.from_host_json(extensions.get("serviceBus", {})),
            function_timeout_seconds=parse_timespan(timeout) if timeout else None,
            mcp=dict(extensions.get("mcp", {})),
        )


_OVERRIDE_PREFIX = "azurefunctionsjobhost__"


def _override(document: dict[str, Any], path: list[str], value: str) -> None:
    """Set `value` at `path` (keys matched without regard to case, as the runtime's configuration does)."""
    node = document
    for key in path[:-1]:
        existing = next((k for k in node if k.lower() == key.lower()), key)
        child = node.get(existing)
        if not isinstance(child, dict):
            child = node[existing] = {}
        node = child
    leaf = next((k for k in node if k.lower() == path[-1].lower()), path[-1])
    try:  # an app setting is text; host.json's numbers and booleans are read as such
        node[leaf] = json.loads(value.lower() if value.lower() in ("true", "false") else value)
    except ValueError:
        node[leaf] = value


def read_local_settings(path: Path) -> dict[str, str]:
    """`Values` of a local.settings.json; Core Tools refuses an encrypted file, and so does this."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if document.get("IsEncrypted"):
        raise ValueError(f"{path}: encrypted local settings are not supported; decrypt with `func settings decrypt`")
    values = document.get("Values", {})
    if not isinstance(values, dict):
        raise ValueError(f"{path}: `Values` must be an object of strings")
    return {str(name): str(value) for name, value in values.items()}


class AppSettings:
    """The settings the app sees, applied to `os.environ` for the host's lifetime and restored after."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values: dict[str, str] = dict(values)
        self._saved: dict[str, str | None] = {}

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, os.environ.get(name, default))

    def apply(self) -> None:
        for name, value in self.values.items():
            self._saved.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def restore(self) -> None:
        for name, previous in self._saved.items():
            if previous is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = previous
        self._saved.clear()
