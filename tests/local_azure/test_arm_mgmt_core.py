"""The ARM stand-in with azure-mgmt-core's ARM-specific pipeline parts, as the generated azure-mgmt-* SDKs
use them: ARMPipelineClient, ARMChallengeAuthenticationPolicy (CAE claims challenges) and ARMPolling
(Azure-AsyncOperation first, then Location)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.pipeline.policies import RequestIdPolicy, RetryPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.core.polling import LROPoller
from azure.core.rest import HttpRequest

from local_azure.arm import ArmStandIn
from tests.local_azure.test_arm import AGENT, ALICE, COMPUTE, ISSUER, SCOPE, STEP_UP, VM1, VMSS, Credential, Signer

mgmt_core = pytest.importorskip("azure.mgmt.core")
from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy  # noqa: E402
from azure.mgmt.core.polling.arm_polling import ARMPolling  # noqa: E402


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture(scope="module")
def module_arm(signer: Signer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArmStandIn]:
    with ArmStandIn(state_dir=tmp_path_factory.mktemp("arm-mgmt"), jwks=signer.jwks(), issuers=[ISSUER]) as arm:
        yield arm


@pytest.fixture
def arm(module_arm: ArmStandIn) -> ArmStandIn:
    module_arm.reset()
    return module_arm


def client(arm: ArmStandIn, credential: Credential) -> Any:
    return mgmt_core.ARMPipelineClient(
        base_url=arm.endpoint,
        policies=[RequestIdPolicy(), RetryPolicy(retry_total=2, retry_backoff_factor=0.01),
                  ARMChallengeAuthenticationPolicy(credential, SCOPE)],
        transport=RequestsTransport(connection_verify=str(arm.authority.trust_bundle_path), connection_timeout=5,
                                    read_timeout=10))


def start(pipeline_client: Any, method: str, path: str, body: Any = None) -> Any:
    request = HttpRequest(method, f"{pipeline_client._base_url}{path}", params={"api-version": COMPUTE}, json=body)
    if body is None:
        request.headers["Content-Length"] = "0"
    return pipeline_client._pipeline.run(request, stream=False)


def test_arm_polling_follows_a_restart_to_its_end(arm: ArmStandIn, signer: Signer) -> None:
    with client(arm, Credential(signer, ALICE)) as pipeline_client:
        initial = start(pipeline_client, "POST", f"{VM1}/restart")
        poller: LROPoller[Any] = LROPoller(pipeline_client, initial, lambda response: response, ARMPolling(0))
        poller.result(timeout=10)
    assert poller.status() == "Succeeded"
    assert arm.resource(VM1)["restartCount"] == 1


def test_arm_polling_waits_for_a_scale_set_update_answered_with_200(arm: ArmStandIn, signer: Signer) -> None:
    with client(arm, Credential(signer, ALICE)) as pipeline_client:
        initial = start(pipeline_client, "PATCH", VMSS, {"sku": {"capacity": 5}})
        poller: LROPoller[Any] = LROPoller(pipeline_client, initial, lambda response: response, ARMPolling(0))
        final = poller.result(timeout=10)
    assert final.http_response.json()["properties"]["provisioningState"] == "Succeeded"
    assert arm.resource(VMSS)["capacity"] == 5


def test_the_arm_challenge_policy_answers_a_claims_challenge_with_a_new_token(arm: ArmStandIn,
                                                                            signer: Signer) -> None:
    arm.add_fault("claims_challenge", principal=AGENT, claims=STEP_UP)
    credential = Credential(signer, AGENT, honours_claims=True)
    with client(arm, credential) as pipeline_client:
        response = start(pipeline_client, "GET", VM1)
    assert response.http_response.status_code == 200
    assert len(credential.claims_requested) == 1
