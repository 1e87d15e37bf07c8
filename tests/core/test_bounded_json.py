"""The JSON every alert is read with: limits named in the refusal, checked before they can hurt."""

from __future__ import annotations

import json

import pytest

from shared.core.bounded_json import JsonLimits, load
from shared.core.errors import MalformedAlert, PayloadTooLarge

LIMITS = JsonLimits(max_bytes=4096, max_depth=8, max_string=100, max_items=10)


def test_a_document_within_every_limit_is_read() -> None:
    document = {"a": [1, 2.5, None, True, "x" * 100, {"b": [[[]]]}]}
    assert load(json.dumps(document).encode(), LIMITS) == document


def test_a_body_over_the_size_limit_is_too_large_and_names_the_limit() -> None:
    with pytest.raises(PayloadTooLarge, match="4097 bytes; the limit is 4096 bytes") as refused:
        load(b" " * 4097, LIMITS)
    assert refused.value.limit_bytes == 4096


def test_the_size_of_text_is_counted_in_utf8_bytes() -> None:
    with pytest.raises(PayloadTooLarge):
        load('"' + "é" * 2100 + '"', LIMITS)


def test_nesting_deeper_than_the_limit_is_refused_naming_it() -> None:
    with pytest.raises(MalformedAlert, match="deeper than 8 levels"):
        load(b"[" * 9 + b"]" * 9, LIMITS)


def test_nesting_of_any_depth_is_refused_without_recursion() -> None:
    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    with pytest.raises(MalformedAlert, match="deeper than 64 levels"):
        load(deep, JsonLimits(max_bytes=10_000_000))


def test_brackets_inside_strings_are_not_nesting() -> None:
    text = json.dumps({"query": "[" * 50 + "{" * 50})
    assert load(text, JsonLimits(max_depth=2))["query"].startswith("[[")


def test_escaped_quotes_do_not_end_a_string() -> None:
    text = json.dumps({"q": '\\"[[[[[[[[[[[[\\"'})
    assert load(text, JsonLimits(max_depth=1))


def test_a_string_longer_than_the_limit_is_refused_naming_it() -> None:
    with pytest.raises(MalformedAlert, match="101 characters long; the limit is 100"):
        load(json.dumps({"a": "x" * 101}), LIMITS)


def test_a_key_longer_than_the_limit_is_refused() -> None:
    with pytest.raises(MalformedAlert, match="the limit is 100 characters"):
        load(json.dumps({"k" * 101: 1}), LIMITS)


def test_an_array_longer_than_the_limit_is_refused_naming_it() -> None:
    with pytest.raises(MalformedAlert, match="11 elements; the limit is 10"):
        load(json.dumps([0] * 11), LIMITS)


def test_an_object_with_more_members_than_the_limit_is_refused() -> None:
    with pytest.raises(MalformedAlert, match="11 members; the limit is 10"):
        load(json.dumps({str(i): i for i in range(11)}), LIMITS)


def test_a_duplicate_key_is_refused_naming_the_key() -> None:
    with pytest.raises(MalformedAlert, match="'alertTargetIDs' appears twice"):
        load(b'{"data": {"alertTargetIDs": ["a"], "alertTargetIDs": ["b"]}}', LIMITS)


def test_the_same_key_in_different_objects_is_not_a_duplicate() -> None:
    assert load(b'[{"a": 1}, {"a": 2}]', LIMITS) == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("body", [b"NaN", b"[Infinity]", b'{"a": -Infinity}'])
def test_non_numbers_are_not_json(body: bytes) -> None:
    with pytest.raises(MalformedAlert, match="not JSON"):
        load(body, LIMITS)


@pytest.mark.parametrize("body", [b"\xff\xfe{}", b'{"a": "\xc3"}'])
def test_bytes_that_are_not_utf8_are_not_json(body: bytes) -> None:
    with pytest.raises(MalformedAlert, match="not UTF-8"):
        load(body, LIMITS)


@pytest.mark.parametrize("body", [b"", b"{", b'{"a": }', b'"unterminated', b'"\\"\\"\\', b"[1, 2,]"])
def test_text_that_is_not_json_says_so(body: bytes) -> None:
    with pytest.raises(MalformedAlert, match="not JSON"):
        load(body, LIMITS)
