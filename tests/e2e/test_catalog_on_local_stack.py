"""Every action of the shipped catalog end to end on the local stack: the real function app, Service Bus,
Azurite, Entra sign-in and OBO, and the ARM stand-in through the real azure-core pipeline.

A write: consent is asked and given, the agent tries with its own identity (Reader: ARM's 403), credentials
are asked and alice grants them, the write runs as alice and the stand-in shows its effect. A read: no
consent, the agent's Reader role is enough. Parametrized over the catalog, so a new action is covered by
adding it (and, if it is a new resource type, a fixture resource and `scenario.CATALOG_TARGETS`).

To keep the suite quick the runs go in waves on one host: every read at once, then the writes with at
most one write per resource in a wave (two writes to one VM at once would race each other)."""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from local_azure.scenario import SUBSCRIPTION, catalog_target, example_parameters
from local_azure.stack import LocalStack
from shared.core.catalog import ANY_TYPE, ActionSpec
from tests.e2e.conftest import App, start_app
from tests.e2e.journeys import AGENT, ALICE_OID, Journey
from tests.pipeline import CATALOG

pytestmark = pytest.mark.e2e
VM_TYPE = "Microsoft.Compute/virtualMachines"


def rule(spec: ActionSpec) -> str:
    return f"catalog-{spec.name}"


def target(spec: ActionSpec) -> str:
    return catalog_target(spec.name, spec.resource_type)


def plans_for_every_action() -> dict[str, Any]:
    return {"version": 1,
            "runbooks": {spec.name: {"steps": [{"action": spec.name,
                                                "parameters": example_parameters(spec.parameters)}]}
                         for spec in CATALOG.values()},
            "plans": [{"name": spec.name, "mode": "review", "runbook": spec.name,
                       "filters": {"alertRules": [rule(spec)],
                                   "resourceTypes": [VM_TYPE if spec.resource_type == ANY_TYPE
                                                     else spec.resource_type]},
                       "scope": {"subscriptions": [SUBSCRIPTION]},
                       "approvers": ["alice@contoso.test", "bob@contoso.test"]} for spec in CATALOG.values()]}


def waves() -> list[list[ActionSpec]]:
    reads = [s for s in CATALOG.values() if s.kind.value != "write"]
    per_target: dict[str, list[ActionSpec]] = defaultdict(list)
    for spec in CATALOG.values():
        if spec.kind.value == "write":
            per_target[target(spec).lower()].append(spec)
    depth = max(len(specs) for specs in per_target.values())
    return [reads] + [[specs[i] for specs in per_target.values() if i < len(specs)] for i in range(depth)]


@dataclass
class Outcome:
    run: dict[str, Any] = field(default_factory=dict)
    activity: list[dict[str, Any]] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    error: str = ""


@pytest.fixture(scope="module")
def app(stand_ins: LocalStack) -> Iterator[App]:
    with tempfile.TemporaryDirectory(prefix="catalog-plans-") as folder:
        plans = Path(folder) / "plans.json"
        plans.write_text(json.dumps(plans_for_every_action()))
        yield from start_app(stand_ins, GATES_RESPONSE_PLANS=str(plans))


@pytest.fixture(scope="module")
def alice(app: App) -> requests.Session:
    return app.session("alice@contoso.test")


@pytest.fixture(scope="module")
def outcomes(app: App, alice: requests.Session) -> dict[str, Outcome]:
    arm = app.stack.arm
    results: dict[str, Outcome] = defaultdict(Outcome)
    for wave in waves():
        arm.reset()
        journeys: dict[str, Journey] = {}
        for spec in wave:
            journeys[spec.name] = Journey(app, alice)
            _step(results[spec.name], lambda j=journeys[spec.name], s=spec: j.raise_alert(rule(s), target(s)))
        for stage in ("Consent needed", "Credentials needed"):
            for spec in wave:
                if spec.kind.value == "write" and not results[spec.name].error:
                    _step(results[spec.name], lambda j=journeys[spec.name], st=stage: j.answer(st, "approve", alice))
        for spec in wave:
            outcome = results[spec.name]
            if not outcome.error:
                _step(outcome, lambda j=journeys[spec.name], o=outcome: o.run.update(j.run()))
            # A write to a child (a node pool of the cluster) is recorded on the child.
            outcome.activity = [a for a in arm.activity()
                                if (a["resourceId"].lower() + "/").startswith(target(spec).lower() + "/")]
            done = [a["resourceId"] for a in outcome.activity if a["outcome"] == "Succeeded"]
            outcome.applied = arm.resource(done[0] if done else target(spec))["applied"]
    return results


def _step(outcome: Outcome, action: Any) -> None:
    try:
        action()
    except Exception as error:  # recorded for the action's own test; the other actions go on
        outcome.error = f"{error.__class__.__name__}: {error}"


WRITES = [pytest.param(s, id=s.name) for s in CATALOG.values() if s.kind.value == "write"]
READS = [pytest.param(s, id=s.name) for s in CATALOG.values() if s.kind.value == "read"]


@pytest.mark.parametrize("spec", WRITES)
def test_a_write_asks_consent_then_credentials_and_runs_as_the_approver(
        outcomes: dict[str, Outcome], spec: ActionSpec) -> None:
    outcome = outcomes[spec.name]
    assert not outcome.error, outcome.error
    run = outcome.run
    assert run["state"] == "succeeded", run["outcome"]
    assert [r["kind"] for r in run["requests"]] == ["consent", "credentials"]
    assert run["steps"][0]["identity"] == "delegated"
    events = [e["event"] for e in run["timeline"]]
    assert events.index("consent_granted") < events.index("credential_granted") < events.index("credential_revoked")
    attempts = [(a["principalId"], a["outcome"], a["httpStatus"]) for a in outcome.activity
                if a["action"] == spec.permission and a["outcome"] in ("Failed", "Succeeded")]
    assert attempts == [(AGENT, "Failed", 403), (ALICE_OID, "Succeeded", 200)]
    assert outcome.applied == [spec.permission]


@pytest.mark.parametrize("spec", READS)
def test_a_read_runs_without_consent_with_the_agents_own_reader_role(
        outcomes: dict[str, Outcome], spec: ActionSpec) -> None:
    outcome = outcomes[spec.name]
    assert not outcome.error, outcome.error
    run = outcome.run
    assert run["state"] == "succeeded", run["outcome"]
    assert run["requests"] == []
    assert run["steps"][0]["identity"] == "agent"
    assert "consent_not_needed" in [e["event"] for e in run["timeline"]]
    assert outcome.activity == []


# ---- previews bound to consent, and grants only by people who can use them ------------------------------
def _mail_with(app: App, run_id: str, text: str) -> Any:
    from local_azure import scenario

    assert app.stack.mail is not None
    return app.stack.mail.wait_for(lambda m: run_id in scenario.body_text(m) and text in scenario.body_text(m),
                                   timeout=60)


def test_a_scale_set_scaled_by_hand_after_consent_is_not_written_and_consent_is_asked_again(
        app: App, alice: requests.Session, outcomes: dict[str, Outcome]) -> None:
    from local_azure import scenario

    arm = app.stack.arm
    arm.reset()
    spec = CATALOG["vmss.set_capacity"]
    journey = Journey(app, alice)
    run_id = journey.raise_alert(rule(spec), target(spec))
    consent = _mail_with(app, run_id, "instances 2 → 4")  # the approver sees the preview
    assert scenario.decide(alice, scenario.link_in(consent), "approve").status_code == 200
    credentials = scenario.link_in(journey.mail("Credentials needed"))  # the agent may not write
    arm.change_by_hand(target(spec), {"/sku/capacity": 3})  # someone scales it by hand meanwhile
    assert scenario.decide(alice, credentials, "approve").status_code == 200
    again = _mail_with(app, run_id, "instances 3 → 4")  # consent asked again, with the new state
    assert [a for a in arm.activity() if a["outcome"] == "Succeeded"] == []  # and nothing was written
    assert arm.resource(target(spec))["capacity"] == 3
    assert scenario.decide(alice, scenario.link_in(again), "approve").status_code == 200
    assert app.stack.mail is not None
    second = app.stack.mail.wait_for(lambda m: "Credentials needed" in str(m["Subject"])
                                     and run_id in scenario.body_text(m) and credentials not in scenario.body_text(m),
                                     timeout=60)
    assert scenario.decide(alice, scenario.link_in(second), "approve").status_code == 200
    run = journey.run()
    assert run["state"] == "succeeded", run["outcome"]
    assert [r["kind"] for r in run["requests"]] == ["consent", "credentials", "consent", "credentials"]
    assert "precondition_changed" in [e["event"] for e in run["timeline"]]
    assert arm.resource(target(spec))["capacity"] == 4


def test_a_grant_by_an_approver_without_the_permission_is_refused_and_a_second_approver_can_grant(
        app: App, alice: requests.Session, outcomes: dict[str, Outcome]) -> None:
    from local_azure import scenario

    arm = app.stack.arm
    arm.reset()
    spec = CATALOG["vm.restart"]
    bob = app.session("bob@contoso.test")  # Reader only in ARM
    journey = Journey(app, alice)
    journey.raise_alert(rule(spec), target(spec))
    journey.answer("Consent needed", "approve", alice)
    link = scenario.link_in(journey.mail("Credentials needed"))
    assert "lack Microsoft.Compute/virtualMachines/restart/action" in bob.get(link, timeout=30).text
    refused = scenario.decide(bob, link, "approve")
    assert refused.status_code == 403
    assert "Microsoft.Compute/virtualMachines/restart/action" in refused.text
    assert journey.run({"awaiting_credentials"})["requests"][-1]["state"] == "pending"
    assert scenario.decide(alice, link, "approve").status_code == 200
    run = journey.run()
    assert run["state"] == "succeeded", run["outcome"]
    assert [(a["principalId"], a["outcome"]) for a in arm.activity() if a["outcome"] in ("Failed", "Succeeded")] \
        == [(AGENT, "Failed"), (ALICE_OID, "Succeeded")]
    assert "credential_grant_refused" in [e["event"] for e in run["timeline"]]

