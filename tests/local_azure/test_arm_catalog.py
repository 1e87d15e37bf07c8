"""Every action of the shipped catalog through the app's own ARM adapter (the real azure-core pipeline and
ARM's long-running-operation polling) against the ARM stand-in: a person with the permission succeeds and
the stand-in shows the effect; the agent's own Reader role gets ARM's 403 for a write."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local_azure.arm import ArmStandIn
from local_azure.scenario import catalog_target, example_parameters
from shared.adapters.arm_client import ArmResourceManager
from shared.core.arm_outcomes import OutcomeKind
from shared.core.catalog import ActionSpec
from tests.local_azure.test_arm import AGENT, ALICE, BOB, ISSUER, VM1, Credential, Signer
from tests.pipeline import CATALOG

WRITES = [pytest.param(spec, id=spec.name) for spec in CATALOG.values() if spec.kind.value == "write"]
READS = [pytest.param(spec, id=spec.name) for spec in CATALOG.values() if spec.kind.value == "read"]


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture(scope="module")
def module_arm(signer: Signer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArmStandIn]:
    with ArmStandIn(state_dir=tmp_path_factory.mktemp("arm-catalog"), jwks=signer.jwks(), issuers=[ISSUER],
                    operation_polls=1) as stand_in:
        yield stand_in


@pytest.fixture
def arm(module_arm: ArmStandIn, monkeypatch: pytest.MonkeyPatch) -> ArmStandIn:
    module_arm.reset()
    for name, value in module_arm.client_environment().items():
        monkeypatch.setenv(name, value)
    return module_arm


@pytest.fixture
def manager(arm: ArmStandIn) -> ArmResourceManager:
    return ArmResourceManager(arm.endpoint, retry_total=1, polling_interval=0)


@pytest.mark.parametrize("spec", WRITES)
def test_a_write_by_a_person_with_the_permission_changes_the_resource(
        spec: ActionSpec, arm: ArmStandIn, manager: ArmResourceManager, signer: Signer) -> None:
    target = catalog_target(spec.name, spec.resource_type)
    outcome = manager.perform(spec, target, example_parameters(spec.parameters), Credential(signer, ALICE))
    assert outcome.kind is OutcomeKind.SUCCEEDED, outcome
    done = [e for e in arm.activity() if e["outcome"] == "Succeeded"]
    assert [(e["action"], e["principalId"]) for e in done] == [(spec.permission, ALICE)]
    assert arm.resource(done[0]["resourceId"])["applied"] == [spec.permission]


@pytest.mark.parametrize("spec", WRITES)
def test_a_write_by_the_agent_with_reader_only_is_arms_403(
        spec: ActionSpec, arm: ArmStandIn, manager: ArmResourceManager, signer: Signer) -> None:
    target = catalog_target(spec.name, spec.resource_type)
    outcome = manager.perform(spec, target, example_parameters(spec.parameters), Credential(signer, AGENT))
    assert (outcome.kind, outcome.status, outcome.code) == (OutcomeKind.SECURITY_CHALLENGE, 403, "AuthorizationFailed")
    assert spec.permission in outcome.message


@pytest.mark.parametrize("spec", READS)
def test_a_read_by_the_agent_with_reader_succeeds(
        spec: ActionSpec, arm: ArmStandIn, manager: ArmResourceManager, signer: Signer) -> None:
    target = catalog_target(spec.name, spec.resource_type)
    outcome = manager.perform(spec, target, example_parameters(spec.parameters), Credential(signer, AGENT))
    assert outcome.kind is OutcomeKind.SUCCEEDED, outcome
    assert outcome.body
    assert arm.activity() == []


def test_the_activity_log_read_lists_the_writes_to_the_resource(arm: ArmStandIn, manager: ArmResourceManager,
                                                                 signer: Signer) -> None:
    manager.perform(CATALOG["vm.restart"], VM1, {}, Credential(signer, ALICE))
    outcome = manager.perform(CATALOG["resource.activity_log"], VM1, {"hours": 1}, Credential(signer, AGENT))
    operations = {(e["operationName"]["value"], e["status"]["value"]) for e in (outcome.body or {})["value"]}
    assert operations == {("Microsoft.Compute/virtualMachines/restart/action", "Accepted"),
                          ("Microsoft.Compute/virtualMachines/restart/action", "Succeeded")}


def test_the_permissions_read_lists_the_callers_roles_at_the_resource(arm: ArmStandIn, signer: Signer) -> None:
    token = signer.token(BOB)
    response = requests.get(f"{arm.endpoint}{VM1}/providers/Microsoft.Authorization/permissions",
                            params={"api-version": "2022-04-01"}, headers={"Authorization": f"Bearer {token}"},
                            verify=str(arm.authority.trust_bundle_path), timeout=10)
    assert response.status_code == 200
    assert response.json()["value"] == [{"actions": ["*/read"], "notActions": [], "dataActions": [],
                                         "notDataActions": []}]


def test_scaling_a_node_pool_changes_its_count_once_the_operation_ends(arm: ArmStandIn, manager: ArmResourceManager,
                                                                        signer: Signer) -> None:
    cluster = catalog_target("aks.scale_node_pool", CATALOG["aks.scale_node_pool"].resource_type)
    outcome = manager.perform(CATALOG["aks.scale_node_pool"], cluster, {"nodePool": "nodepool1", "count": 6},
                              Credential(signer, ALICE))
    assert outcome.kind is OutcomeKind.SUCCEEDED
    pool = arm.resource(f"{cluster}/agentPools/nodepool1")
    assert (pool["arm"]["properties"]["count"], pool["provisioningState"]) == (6, "Succeeded")


def test_a_failover_makes_the_secondary_primary(arm: ArmStandIn, manager: ArmResourceManager, signer: Signer) -> None:
    group = catalog_target("sql.failover", CATALOG["sql.failover"].resource_type)
    assert arm.resource(group)["arm"]["properties"]["replicationRole"] == "Secondary"
    manager.perform(CATALOG["sql.failover"], group, {}, Credential(signer, ALICE))
    assert arm.resource(group)["arm"]["properties"]["replicationRole"] == "Primary"


def test_a_capacity_out_of_bounds_is_arms_invalid_parameter(arm: ArmStandIn, manager: ArmResourceManager,
                                                             signer: Signer) -> None:
    plan = catalog_target("appserviceplan.scale_out", "Microsoft.Web/serverfarms")
    outcome = manager.perform(CATALOG["appserviceplan.scale_out"], plan, {"workers": 99}, Credential(signer, ALICE))
    assert (outcome.status, outcome.code) == (400, "InvalidParameter")
    assert arm.resource(plan)["capacity"] == 2


def test_the_activity_log_needs_a_start_time(arm: ArmStandIn, signer: Signer) -> None:
    response = requests.get(
        f"{arm.endpoint}/subscriptions/{VM1.split('/')[2]}/providers/Microsoft.Insights/eventtypes/management/values",
        params={"api-version": "2015-04-01", "$filter": f"resourceUri eq '{VM1}'"},
        headers={"Authorization": f"Bearer {signer.token(AGENT)}"}, verify=str(arm.authority.trust_bundle_path),
        timeout=10)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "BadRequest")
