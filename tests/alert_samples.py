"""The common alert schema samples in tests/fixtures/alerts, fired and resolved."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "alerts"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))


def fired(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return document


def resolved(name: str) -> dict[str, Any]:
    """The same alert once its condition cleared: Azure Monitor sends it again with the condition
    Resolved and (for metric alerts) the time it resolved."""
    document = copy.deepcopy(fired(name))
    essentials = document["data"]["essentials"]
    essentials["monitorCondition"] = "Resolved"
    essentials["resolvedDateTime"] = "2026-11-24T04:00:00.000Z"  # after every sample fired
    return document


def samples() -> list[tuple[str, dict[str, Any]]]:
    """(name, document) for every sample, fired then resolved."""
    return [(f"{name}:Fired", fired(name)) for name in NAMES] + [(f"{name}:Resolved", resolved(name)) for name in NAMES]
