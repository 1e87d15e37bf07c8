"""JSON read within limits: size, nesting depth, string length, array (and object) length, no
duplicate keys.

`json.loads` recurses once per nesting level, so a body ten thousand levels deep raises
`RecursionError`; the depth is therefore counted by a flat scan before the decoder sees the text.
The other limits are checked while decoding (duplicate keys) and in one iterative walk after it,
so no input of any shape can exhaust the stack or run unbounded work beyond the size limit.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from shared.core.errors import MalformedAlert, PayloadTooLarge

# A JSON string (escapes included) or one bracket. Strings are matched whole, so a bracket inside
# a string is never counted. An unterminated string runs to the end of the text, and the quantifiers
# are possessive: a match from a quote never fails, so the scan is linear in every input (a failing
# match would be retried from each later quote: quadratic). In text that is not JSON the count may
# be off, and the decoder refuses that text anyway.
_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)


@dataclass(frozen=True)
class JsonLimits:
    max_bytes: int = 256 * 1024
    max_depth: int = 64
    max_string: int = 65_536  # characters, keys included
    max_items: int = 10_000  # elements of one array, members of one object


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateKey(key)
        document[key] = value
    return document


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load(raw: bytes | str, limits: JsonLimits) -> Any:
    """The decoded document, or `MalformedAlert` (`PayloadTooLarge` for the size) naming the limit."""
    size = len(raw.encode("utf-8", "surrogatepass")) if isinstance(raw, str) else len(raw)
    if size > limits.max_bytes:
        raise PayloadTooLarge(f"the body is {size} bytes; the limit is {limits.max_bytes} bytes", limits.max_bytes)
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise MalformedAlert(f"the message is not JSON (not UTF-8 at byte {error.start})") from None
    else:
        text = raw
    _check_depth(text, limits.max_depth)
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except _DuplicateKey as duplicate:
        raise MalformedAlert(
            f"the key {duplicate.key[:100]!r} appears twice in one object; an alert must be unambiguous") from None
    except (ValueError, RecursionError) as error:
        raise MalformedAlert(f"the message is not JSON ({error.__class__.__name__}: {str(error)[:200]})") from None
    _check_sizes(document, limits)
    return document


def _check_depth(text: str, max_depth: int) -> None:
    depth = 0
    for match in _TOKEN.finditer(text):
        bracket = match.group()
        if bracket in "[{":
            depth += 1
            if depth > max_depth:
                raise MalformedAlert(f"the message nests deeper than {max_depth} levels (the depth limit)")
        elif bracket in "]}":
            depth -= 1


def _check_sizes(document: Any, limits: JsonLimits) -> None:
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if len(value) > limits.max_string:
                raise MalformedAlert(
                    f"a string is {len(value)} characters long; the limit is {limits.max_string} characters")
        elif isinstance(value, list):
            if len(value) > limits.max_items:
                raise MalformedAlert(f"an array has {len(value)} elements; the limit is {limits.max_items}")
            pending.extend(value)
        elif isinstance(value, dict):
            if len(value) > limits.max_items:
                raise MalformedAlert(f"an object has {len(value)} members; the limit is {limits.max_items}")
            pending.extend(value.keys())
            pending.extend(value.values())
