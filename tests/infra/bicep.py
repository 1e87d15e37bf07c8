"""Reading the Bicep templates in infra/ with pycep, for the tests that hold them and the app together."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

pycep = pytest.importorskip("pycep", reason="pycep-parser is not installed (.ci/check-infra installs it)")

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MODULES = INFRA / "modules"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    return pycep.BicepParser().parse(file_path=path)


def variable(path: Path, name: str) -> Any:
    return parse(path)["variables"][name]["value"]


def resource_properties(path: Path, name: str) -> dict[str, Any]:
    config = parse(path)["resources"][name]["config"]
    if "loop_type" in config:  # `[for item in items: {...}]`: the body is one level down
        config = config["config"]
    return config["properties"]


def resolve(path: Path, value: Any) -> Any:
    """pycep writes a reference to a variable as the variable's bare name: follow it to its value."""
    variables = parse(path).get("variables", {})
    if isinstance(value, str) and value in variables:
        return variables[value]["value"]
    return value
