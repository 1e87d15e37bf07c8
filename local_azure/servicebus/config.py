"""Queue declarations in the layout of the Service Bus emulator's `Config.json`.

The same file can be handed to Microsoft's emulator, so the local runtime and the emulator agree on
the queues. Tests may instead pass a list of `QueueSettings` (or of dicts in the emulator's queue
layout) to declare their own queues, typically with short lock durations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_TTL_SECONDS = 14 * 24 * 3600.0  # the emulator's ceiling for DefaultMessageTimeToLive

_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> float:
    """Seconds in an ISO 8601 duration such as `PT1M` or `P14D` (no years or months: Service Bus never uses them)."""
    match = _DURATION.match(text.strip())
    if not match or text.strip() in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    parts = {name: float(value) for name, value in match.groupdict().items() if value}
    return (
        parts.get("days", 0.0) * 86400
        + parts.get("hours", 0.0) * 3600
        + parts.get("minutes", 0.0) * 60
        + parts.get("seconds", 0.0)
    )


def format_duration(seconds: float) -> str:
    whole = int(seconds)
    if whole == seconds and whole % 3600 == 0:
        return f"PT{whole // 3600}H"
    if whole == seconds and whole % 60 == 0:
        return f"PT{whole // 60}M"
    return f"PT{seconds:g}S"


@dataclass(frozen=True)
class QueueSettings:
    name: str
    max_delivery_count: int = 10
    lock_duration_seconds: float = 60.0
    requires_duplicate_detection: bool = False
    duplicate_detection_window_seconds: float = 600.0
    dead_lettering_on_message_expiration: bool = False
    default_ttl_seconds: float = DEFAULT_TTL_SECONDS

    @classmethod
    def from_emulator(cls, entry: Mapping[str, Any]) -> QueueSettings:
        """One entry of `Namespaces[].Queues[]` in the emulator's Config.json."""
        props: Mapping[str, Any] = entry.get("Properties", {})
        return cls(
            name=str(entry["Name"]),
            max_delivery_count=int(props.get("MaxDeliveryCount", 10)),
            lock_duration_seconds=parse_duration(props.get("LockDuration", "PT1M")),
            requires_duplicate_detection=bool(props.get("RequiresDuplicateDetection", False)),
            duplicate_detection_window_seconds=parse_duration(
                props.get("DuplicateDetectionHistoryTimeWindow", "PT10M")),
            dead_lettering_on_message_expiration=bool(props.get("DeadLetteringOnMessageExpiration", False)),
            default_ttl_seconds=parse_duration(props.get("DefaultMessageTimeToLive", "P14D")),
        )

    def to_emulator(self) -> dict[str, Any]:
        # Properties the emulator requires even though this stand-in ignores them (no sessions, no forwarding).
        return {
            "Name": self.name,
            "Properties": {
                "DeadLetteringOnMessageExpiration": self.dead_lettering_on_message_expiration,
                "DefaultMessageTimeToLive": format_duration(self.default_ttl_seconds),
                "DuplicateDetectionHistoryTimeWindow": format_duration(self.duplicate_detection_window_seconds),
                "ForwardDeadLetteredMessagesTo": "",
                "ForwardTo": "",
                "LockDuration": format_duration(self.lock_duration_seconds),
                "MaxDeliveryCount": self.max_delivery_count,
                "RequiresDuplicateDetection": self.requires_duplicate_detection,
                "RequiresSession": False,
            },
        }


QueueSource = str | Path | Mapping[str, Any] | Iterable[QueueSettings | Mapping[str, Any]]


def load_queues(source: QueueSource) -> list[QueueSettings]:
    """Queues from a Config.json path, a parsed Config.json, or a list of queue definitions."""
    if isinstance(source, str | Path):
        return load_queues(json.loads(Path(source).read_text(encoding="utf-8")))
    if isinstance(source, Mapping):
        namespaces = source["UserConfig"]["Namespaces"]
        entries = [queue for namespace in namespaces for queue in namespace.get("Queues", [])]
        queues = [QueueSettings.from_emulator(entry) for entry in entries]
    else:
        queues = [item if isinstance(item, QueueSettings) else QueueSettings.from_emulator(item) for item in source]
    names = [queue.name.lower() for queue in queues]
    if len(set(names)) != len(names):
        raise ValueError(f"queue declared twice: {names}")
    return queues


def emulator_config(queues: Iterable[QueueSettings], namespace: str = "sbemulatorns") -> dict[str, Any]:
    return {
        "UserConfig": {
            "Namespaces": [{"Name": namespace, "Queues": [queue.to_emulator() for queue in queues], "Topics": []}],
            "Logging": {"Type": "File"},
        }
    }
