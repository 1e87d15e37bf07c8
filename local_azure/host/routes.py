"""HTTP route templates as the Functions host (ASP.NET Core routing) reads them.

`items/{id:int}/{name?}`, `files/{*path}`, `{id:guid}`, `{code:length(6)}`, `{n:range(1,10)}`,
`{s:regex(^[a-z]+$)}`. Literal segments match case-insensitively. When several templates match, the
most specific wins: literal segments before constrained parameters before plain ones before catch-alls.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import unquote

_PARAMETER = re.compile(
    r"^\{(?P<star>\*{1,2})?(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?P<constraints>(?::[^:?=}]+(?:\([^)]*\))?)*)(?P<optional>\?)?(?:=(?P<default>[^}]*))?\}$"
)
_CONSTRAINT = re.compile(r":(?P<kind>[A-Za-z]+)(?:\((?P<argument>[^)]*)\))?")


class RouteError(ValueError):
    """A route template the host cannot read."""


def _is_int(text: str, bits: int) -> bool:
    try:
        value = int(text, 10)
    except ValueError:
        return False
    return -(2 ** (bits - 1)) <= value < 2 ** (bits - 1) and text.strip() == text


def _is_decimal(text: str) -> bool:
    try:
        Decimal(text)
    except InvalidOperation:
        return False
    return text.strip() == text and text.lower() not in ("nan", "inf", "-inf", "infinity")


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _is_datetime(text: str) -> bool:
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _constraint(kind: str, argument: str | None) -> Callable[[str], bool]:
    kind = kind.lower()
    simple: dict[str, Callable[[str], bool]] = {
        "int": lambda text: _is_int(text, 32),
        "long": lambda text: _is_int(text, 64),
        "bool": lambda text: text.lower() in ("true", "false"),
        "guid": _is_guid,
        "alpha": lambda text: text.isascii() and text.isalpha(),
        "decimal": _is_decimal,
        "double": _is_decimal,
        "float": _is_decimal,
        "datetime": _is_datetime,
    }
    if kind in simple and argument is None:
        return simple[kind]
    if argument is None:
        raise RouteError(f"unknown route constraint {kind!r}")
    if kind == "regex":
        pattern = re.compile(argument, re.IGNORECASE)
        return lambda text: pattern.search(text) is not None
    numbers = [int(part) for part in argument.split(",")]
    bounded: dict[str, Callable[[str], bool]] = {
        "minlength": lambda text: len(text) >= numbers[0],
        "maxlength": lambda text: len(text) <= numbers[0],
        "length": (lambda text: len(text) == numbers[0]) if len(numbers) == 1
        else (lambda text: numbers[0] <= len(text) <= numbers[1]),
        "min": lambda text: _is_int(text, 64) and int(text) >= numbers[0],
        "max": lambda text: _is_int(text, 64) and int(text) <= numbers[0],
        "range": lambda text: _is_int(text, 64) and numbers[0] <= int(text) <= numbers[-1],
    }
    if kind not in bounded:
        raise RouteError(f"unknown route constraint {kind!r}")
    return bounded[kind]


@dataclass(frozen=True)
class Segment:
    literal: str | None = None
    name: str | None = None
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    checks: tuple[Callable[[str], bool], ...] = ()

    def accepts(self, text: str) -> bool:
        if self.literal is not None:
            return text.lower() == self.literal.lower()
        return all(check(text) for check in self.checks)

    @property
    def rank(self) -> int:
        # Lower is more specific (ASP.NET's route precedence, coarsely).
        if self.literal is not None:
            return 0
        if self.catch_all:
            return 4
        return (1 if self.checks else 2) + (1 if self.optional else 0)


def _segment(text: str) -> Segment:
    if "{" not in text and "}" not in text:
        return Segment(literal=text)
    match = _PARAMETER.match(text)
    if not match:
        raise RouteError(f"route segment {text!r} mixes literals and parameters, or is malformed")
    checks = tuple(_constraint(found["kind"], found["argument"])
                   for found in _CONSTRAINT.finditer(match["constraints"] or ""))
    return Segment(
        name=match["name"],
        optional=bool(match["optional"]) or match["default"] is not None,
        catch_all=bool(match["star"]),
        default=match["default"],
        checks=checks,
    )


@dataclass(frozen=True)
class RouteTemplate:
    template: str
    segments: tuple[Segment, ...]

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        parts = [part for part in template.strip("/").split("/") if part]
        segments = tuple(_segment(part) for part in parts)
        for index, segment in enumerate(segments):
            if segment.catch_all and index != len(segments) - 1:
                raise RouteError(f"{template!r}: a catch-all parameter must be the last segment")
            if segment.optional and any(not later.optional for later in segments[index + 1:]):
                raise RouteError(f"{template!r}: an optional parameter must not be followed by required segments")
        return cls(template, segments)

    @property
    def precedence(self) -> tuple[int, ...]:
        return tuple(segment.rank for segment in self.segments)

    def match(self, path: str) -> dict[str, str] | None:
        """Route parameters for a path (without the route prefix), or None when it does not match."""
        parts = [unquote(part) for part in path.strip("/").split("/")] if path.strip("/") else []
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment.catch_all:
                rest = "/".join(parts[index:])
                if rest:
                    values[segment.name or ""] = rest
                elif not segment.optional and segment.default is None:
                    pass  # `{*path}` matches an empty remainder, as ASP.NET's catch-all does
                return values
            if index >= len(parts):
                if not segment.optional:
                    return None
                if segment.default is not None:
                    values[segment.name or ""] = segment.default
                continue
            if not segment.accepts(parts[index]):
                return None
            if segment.name is not None:
                values[segment.name] = parts[index]
        return values if len(parts) <= len(self.segments) else None
