from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.core.alerts import parse_alert
from shared.core.errors import ConfigError
from shared.core.plans import load_plan_book, parse_plan_book
from tests.pipeline import CATALOG, SUB, VM, plan_book
from tests.pipeline import alert as pipeline_alert

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_response_plans_are_valid() -> None:
    book = load_plan_book(ROOT / "config" / "response-plans.json", CATALOG)
    assert book.version >= 1
    assert {p.name for p in book.plans} >= {"vm-not-responding"}


def _broken(**changes: object) -> str:
    document = json.loads(plan_book("review", ["vm.restart"]))
    plan = document["plans"][0]
    for key, value in changes.items():
        if value is None:
            plan.pop(key)
        else:
            plan[key] = value
    return json.dumps(document)


@pytest.mark.parametrize(("text", "entry", "problem"), [
    ("{", "(file)", "not valid JSON"),
    (_broken(mode="yolo"), "plans[plan]", "not review, autonomous or read-only"),
    (_broken(runbook="missing"), "plans[plan]", "not defined"),
    (_broken(scope=None), "plans[plan].scope", "is required"),
    (_broken(approvers=[]), "plans[plan]", "no approvers"),
    (_broken(mode="read-only"), "plans[plan]", "write actions"),
    (_broken(filters={"resourceTypes": ["Microsoft.Web/sites"]}), "plans[plan].filters.resourceTypes", "must be"),
])
def test_a_mistake_names_the_file_the_entry_and_the_problem(text: str, entry: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_plan_book(text, "plans.json", CATALOG)
    assert raised.value.file == "plans.json"
    assert raised.value.entry == entry
    assert problem in raised.value.problem


def test_an_unknown_action_is_named() -> None:
    document = json.loads(plan_book("review", ["vm.restart"]))
    document["runbooks"]["book"]["steps"].append({"action": "vm.delete"})
    with pytest.raises(ConfigError, match=r"unknown action 'vm\.delete'"):
        parse_plan_book(json.dumps(document), "plans.json", CATALOG)


def test_a_plan_matches_only_inside_its_scope() -> None:
    from shared.core.alerts import parse_alert
    from tests.pipeline import alert

    book = parse_plan_book(plan_book("review", ["vm.restart"]), "p", CATALOG)
    elsewhere = VM.replace(SUB, "99999999-0000-4000-8000-000000000000")
    assert book.match(parse_alert(json.dumps(alert())), VM.lower()) is not None
    assert book.match(parse_alert(json.dumps(alert(resource=elsewhere))), elsewhere.lower()) is None


@pytest.mark.parametrize("capacity", ["lots", -1, 5000, 2.5, True])
def test_a_scale_set_capacity_must_be_a_sensible_whole_number(capacity: object) -> None:
    document = {
        "version": 1,
        "runbooks": {"scale": {"steps": [{"action": "vmss.set_capacity", "parameters": {"capacity": capacity}}]}},
        "plans": [{"name": "p", "mode": "review", "runbook": "scale", "scope": {"subscriptions": [SUB]},
                   "filters": {"resourceTypes": ["Microsoft.Compute/virtualMachineScaleSets"]},
                   "approvers": ["alice@contoso.test"]}],
    }
    with pytest.raises(ConfigError) as raised:
        parse_plan_book(json.dumps(document), "plans.json", CATALOG)
    assert raised.value.entry == "runbooks.scale.steps[0].parameters"
    assert "parameter 'capacity'" in raised.value.problem


def test_an_approver_object_id_must_be_a_guid() -> None:
    document = json.loads(plan_book("review", ["vm.restart"]))
    document["plans"][0]["approvers"] = [{"upn": "alice@contoso.test", "objectId": "alice"}]
    with pytest.raises(ConfigError, match="object id"):
        parse_plan_book(json.dumps(document), "plans.json", CATALOG)


@pytest.mark.parametrize("target", [f"/subscriptions/{SUB}", f"/subscriptions/{SUB}/resourceGroups/rg-prod-web"])
def test_a_subscription_or_resource_group_target_never_matches_a_plan(target: str) -> None:
    # The broadest plan there is: any rule, any severity, the whole subscription.
    document = json.loads(plan_book("autonomous", ["vm.restart"]))
    document["plans"][0]["filters"].pop("alertRules")
    book = parse_plan_book(json.dumps(document), "plans.json", CATALOG)
    alert = parse_alert(json.dumps(pipeline_alert(resource=target)))
    assert book.match(alert, target) is None
    assert book.match(alert, VM) is not None  # the same plan does claim a VM in that scope


def test_an_alert_without_rule_or_severity_matches_only_a_plan_that_filters_on_neither() -> None:
    document = json.loads(plan_book("autonomous", ["vm.restart"]))
    document["plans"][0]["filters"].pop("alertRules")
    book = parse_plan_book(json.dumps(document), "plans.json", CATALOG)
    raw = pipeline_alert()
    raw["data"]["essentials"].update(alertRule=None, severity=None)
    alert = parse_alert(json.dumps(raw))
    assert book.match(alert, VM) is not None
    assert parse_plan_book(plan_book("autonomous", ["vm.restart"]), "plans.json", CATALOG).match(alert, VM) is None
