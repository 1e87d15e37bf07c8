"""Route templates as the Functions host reads them."""

from __future__ import annotations

import pytest

from local_azure.host.routes import RouteError, RouteTemplate


def match(template: str, path: str) -> dict[str, str] | None:
    return RouteTemplate.parse(template).match(path)


def test_literal_segments_match_case_insensitively() -> None:
    assert match("runs/status", "Runs/STATUS") == {}


def test_a_parameter_takes_one_segment() -> None:
    assert match("runs/{run}", "runs/abc") == {"run": "abc"}
    assert match("runs/{run}", "runs/abc/def") is None


def test_an_optional_parameter_may_be_absent() -> None:
    assert match("runs/{run?}", "runs") == {}


def test_a_default_value_fills_an_absent_parameter() -> None:
    assert match("runs/{page=1}", "runs") == {"page": "1"}


def test_a_catch_all_takes_the_rest_of_the_path() -> None:
    assert match("files/{*path}", "files/a/b/c.txt") == {"path": "a/b/c.txt"}


def test_segments_are_percent_decoded() -> None:
    assert match("runs/{run}", "runs/a%20b") == {"run": "a b"}


@pytest.mark.parametrize(("constraint", "good", "bad"), [
    ("int", "42", "4x"),
    ("long", "9000000000", "x"),
    ("guid", "a11ce000-0000-4000-8000-000000000001", "not-a-guid"),
    ("alpha", "abc", "ab1"),
    ("bool", "true", "yes"),
    ("length(3)", "abc", "abcd"),
    ("minlength(2)", "ab", "a"),
    ("maxlength(2)", "ab", "abc"),
    ("min(10)", "10", "9"),
    ("max(10)", "10", "11"),
    ("range(1,5)", "3", "6"),
    ("regex(^r-[0-9]+$)", "r-12", "x-12"),
])
def test_constraints(constraint: str, good: str, bad: str) -> None:
    template = f"x/{{value:{constraint}}}"

    assert match(template, f"x/{good}") == {"value": good}
    assert match(template, f"x/{bad}") is None


def test_constraints_combine() -> None:
    assert match("x/{n:int:min(5)}", "x/7") == {"n": "7"}
    assert match("x/{n:int:min(5)}", "x/3") is None


def test_literals_rank_before_constrained_before_plain_parameters() -> None:
    templates = [RouteTemplate.parse(text) for text in ("items/{name}", "items/{id:int}", "items/special")]

    ordered = sorted(templates, key=lambda template: template.precedence)

    assert [template.template for template in ordered] == ["items/special", "items/{id:int}", "items/{name}"]


@pytest.mark.parametrize("template", ["x/{a?}/y", "{*rest}/y", "x/{id:nosuch}", "x/a{b}"])
def test_a_template_the_runtime_refuses_is_refused(template: str) -> None:
    with pytest.raises(RouteError):
        RouteTemplate.parse(template)
