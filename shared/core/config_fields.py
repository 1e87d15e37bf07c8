"""Checks shared by the configuration files' readers (plans, guardrails): each mistake names its entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.core.errors import ConfigError


def strings(raw: Any, entry: str, source: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise ConfigError(source, entry, "must be a list of non-empty strings")
    return list(raw)


def no_unknown_keys(raw: Mapping[str, Any], known: set[str], entry: str, source: str) -> None:
    """A misspelt key ("rule" for "rules") would drop a setting without a word: every key is known or refused."""
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(source, entry, f"has unknown settings {unknown}; known: {sorted(known)}")
