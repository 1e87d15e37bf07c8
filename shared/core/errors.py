"""The errors the core raises.

    GatesError
     ├── IllegalTransition     a run or request cannot move from its state by that event
     ├── MalformedAlert        an alert that cannot be read; `reason` is for people
 │    └── PayloadTooLarge  ... because it is larger than the limit it names (HTTP 413)
     ├── ConfigError           a response plan file that cannot be used; names file, entry, problem
     └── ConcurrencyConflict   someone else changed the run first (an adapter raises it on a 412)
"""

from __future__ import annotations


class GatesError(Exception):
    """Base of every error the product raises on purpose."""


class IllegalTransition(GatesError):
    def __init__(self, subject: str, state: str, event: str) -> None:
        super().__init__(f"{subject} in state '{state}' cannot take event '{event}'")
        self.subject = subject
        self.state = state
        self.event = event


class MalformedAlert(GatesError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PayloadTooLarge(MalformedAlert):
    def __init__(self, reason: str, limit_bytes: int) -> None:
        super().__init__(reason)
        self.limit_bytes = limit_bytes


class ConfigError(GatesError):
    def __init__(self, file: str, entry: str, problem: str) -> None:
        super().__init__(f"{file}: {entry}: {problem}")
        self.file = file
        self.entry = entry
        self.problem = problem


class ConcurrencyConflict(GatesError):
    """The entity changed since it was read; reload and decide again."""
