"""The action catalog file: what ships, what is refused whatever the file says, and how mistakes are named."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.core.catalog import ANY_TYPE, load_catalog, parse_catalog
from shared.core.errors import ConfigError
from shared.core.model import ActionKind

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "actions.json"
VM = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"


def shipped() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SHIPPED.read_text())
    return document


def action(name: str) -> dict[str, Any]:
    return copy.deepcopy(next(a for a in shipped()["actions"] if a["name"] == name))


def catalog_of(*actions: dict[str, Any]) -> str:
    return json.dumps({"version": 1, "actions": list(actions)})


def refusal(*actions: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        parse_catalog(catalog_of(*actions), "actions.json")
    return raised.value


def test_the_shipped_catalog_is_worth_shipping() -> None:
    catalog = load_catalog(SHIPPED)
    types = {a.resource_type for a in catalog.values()} - {ANY_TYPE}
    assert len(catalog) >= 25
    assert len(types) >= 8
    assert {"vm.restart", "vmss.set_capacity", "webapp.swap_slots", "aks.scale_node_pool", "sql.failover",
            "redis.reboot", "cosmos.change_failover_priority", "containerapp.restart_revision",
            "functionapp.restart", "frontdoor.purge", "resource.health", "resource.activity_log",
            "resource.metrics"} <= set(catalog)


def test_every_shipped_write_has_a_preview_and_every_parameter_an_example() -> None:
    for spec in load_catalog(SHIPPED).values():
        assert (spec.preview is not None) is (spec.kind is ActionKind.WRITE), spec.name
        for name, schema in spec.parameters.get("properties", {}).items():
            assert schema.get("examples"), f"{spec.name}.{name}"
            assert spec.problems({n: s["examples"][0] for n, s in spec.parameters["properties"].items()}) == []


def test_a_delete_method_is_refused_whatever_the_file_says() -> None:
    delete = action("vm.restart")
    delete["operation"]["method"] = "DELETE"
    error = refusal(delete)
    assert (error.file, error.entry) == ("actions.json", "actions[vm.restart].operation.method")
    assert "deletes are refused" in error.problem


def test_a_delete_permission_is_refused() -> None:
    delete = action("vm.restart")
    delete["permissions"] = ["Microsoft.Compute/virtualMachines/delete"]
    assert "deletes are refused" in refusal(delete).problem


@pytest.mark.parametrize(("resource_type", "path", "permission", "why"), [
    ("Microsoft.Compute/virtualMachines", "/providers/Microsoft.Authorization/roleAssignments/{name}",
     "Microsoft.Authorization/roleAssignments/write", "who may do what"),
    ("Microsoft.Compute/virtualMachines", "/providers/Microsoft.Authorization/locks/{name}",
     "Microsoft.Authorization/locks/write", "locks protect"),
    ("Microsoft.KeyVault/vaults", "/secrets/{name}", "Microsoft.KeyVault/vaults/secrets/write", "credentials"),
])
def test_access_locks_and_secrets_are_refused(resource_type: str, path: str, permission: str, why: str) -> None:
    dangerous = action("vm.restart")
    dangerous.update(resourceType=resource_type, permissions=[permission])
    dangerous["operation"].update(method="PUT", path=path)
    dangerous["parameters"] = {"type": "object", "properties": {"name": {"type": "string", "pattern": "^[a-z]+$"}}}
    error = refusal(dangerous)
    assert error.entry == "actions[vm.restart]"
    assert why in error.problem


def test_an_unknown_parameter_type_names_the_parameter() -> None:
    odd = action("vmss.set_capacity")
    odd["parameters"]["properties"]["capacity"]["type"] = "bignum"
    error = refusal(odd)
    assert error.entry == "actions[vmss.set_capacity].parameters.capacity"
    assert "unknown parameter type 'bignum'" in error.problem


def test_a_parameter_without_bounds_is_refused() -> None:
    unbounded = action("vmss.set_capacity")
    del unbounded["parameters"]["properties"]["capacity"]["maximum"]
    assert "needs bounds" in refusal(unbounded).problem


def test_missing_permissions_stop_the_catalog() -> None:
    bare = action("vm.restart")
    del bare["permissions"]
    error = refusal(bare)
    assert error.entry == "actions[vm.restart].permissions"
    assert "list every ARM permission" in error.problem


def test_a_write_without_a_preview_is_refused() -> None:
    blind = action("vm.restart")
    del blind["preview"]
    assert refusal(blind).entry == "actions[vm.restart].preview"


def test_a_read_must_be_a_get() -> None:
    sneaky = action("vm.read")
    sneaky["operation"]["method"] = "POST"
    assert "a read must be a GET" in refusal(sneaky).problem


def test_a_path_parameter_must_be_bounded_by_a_pattern() -> None:
    loose = action("aks.read_node_pool")
    loose["parameters"]["properties"]["nodePool"] = {"type": "string", "maxLength": 12}
    assert "must be a string with a 'pattern'" in refusal(loose).problem


def test_a_placeholder_must_name_a_declared_parameter() -> None:
    typo = action("vmss.set_capacity")
    typo["operation"]["body"] = {"sku": {"capacity": "{capactiy}"}}
    assert "{capactiy} names no declared parameter" in refusal(typo).problem


def test_an_action_named_twice_is_refused() -> None:
    assert "used twice" in refusal(action("vm.read"), action("vm.read")).problem


def test_a_body_placeholder_keeps_the_parameter_type() -> None:
    spec = load_catalog(SHIPPED)["vmss.set_capacity"]
    assert spec.body({"capacity": 4}) == {"sku": {"capacity": 4}}


def test_path_and_query_placeholders_are_filled_from_parameters_and_the_target() -> None:
    catalog = load_catalog(SHIPPED)
    assert catalog["aks.scale_node_pool"].request_path(VM, {"nodePool": "pool1", "count": 3}) \
        == f"{VM}/agentPools/pool1"
    log = catalog["resource.activity_log"]
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    assert log.request_path(VM, {"hours": 2}) == \
        "/subscriptions/s1/providers/Microsoft.Insights/eventtypes/management/values"
    assert log.query(VM, {"hours": 2}, now)["$filter"] == \
        f"eventTimestamp ge '2026-12-01T10:00:00Z' and resourceUri eq '{VM}'"


def test_bad_parameters_are_refused_naming_the_parameter() -> None:
    spec = load_catalog(SHIPPED)["vmss.set_capacity"]
    assert spec.problems({"capacity": 5000}) == ["parameter 'capacity': 5000 is greater than the maximum of 1000"]
    assert spec.problems({}) == ["parameter 'capacity': 'capacity' is a required property"]


@pytest.mark.parametrize(("change", "problem"), [
    (lambda a: a["operation"].update(method="DELETE"), "deletes are refused"),
    (lambda a: a["parameters"]["properties"]["capacity"].update(type="bignum"), "unknown parameter type"),
    (lambda a: a.pop("permissions"), "list every ARM permission"),
])
def test_a_bad_catalog_stops_the_app_with_file_entry_and_problem(tmp_path: Path, change: Any, problem: str) -> None:
    document = shipped()
    target = next(a for a in document["actions"] if a["name"] == "vmss.set_capacity")
    change(target)
    path = tmp_path / "actions.json"
    path.write_text(json.dumps(document))
    result = subprocess.run([sys.executable, "-c", "import function_app"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "GATES_ACTION_CATALOG": str(path)}, timeout=60, check=False)
    assert result.returncode != 0
    assert f"ConfigError: {path}: actions[vmss.set_capacity]" in result.stderr
    assert problem in result.stderr


def test_the_readmes_worked_example_is_a_valid_action() -> None:
    readme = (ROOT / "README.md").read_text()
    example = json.loads(readme.split("**Adding an action, a worked example.**")[1].split("```json")[1].split("```")[0])
    document = shipped()
    document["actions"].append(example)
    document["version"] += 1
    catalog = parse_catalog(json.dumps(document), "actions.json")
    assert catalog["vm.power_off"].permission == "Microsoft.Compute/virtualMachines/powerOff/action"
