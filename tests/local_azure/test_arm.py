"""The ARM stand-in, driven by the real azure-core pipeline (bearer tokens, retries, LRO polling) over HTTPS."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from azure.core import PipelineClient
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    RequestIdPolicy,
    RetryPolicy,
    SansIOHTTPPolicy,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.core.polling import LROPoller
from azure.core.polling.base_polling import (
    LocationPolling,
    LROBasePolling,
    OperationResourcePolling,
    StatusCheckPolling,
)
from azure.core.rest import HttpRequest
from cryptography.hazmat.primitives.asymmetric import rsa

from local_azure.arm import ArmStandIn

TENANT = "72f988bf-0000-4000-8000-00000000c0de"
SUB = "2b5c3f6e-0000-4000-8000-0000000005b1"
ISSUER = f"https://login.contoso.test/{TENANT}/v2.0"
AGENT_APP = "a9e77000-0000-4000-8000-00000000a6e7"
AGENT = "a9e77000-0000-4000-8000-0000000000aa"
ALICE = "a11ce000-0000-4000-8000-000000000001"
BOB = "b0b00000-0000-4000-8000-000000000002"
MALLORY = "3a110000-0000-4000-8000-000000000003"
GATES_APP = "5e1f0a4b-0000-4000-8000-0000000a5e00"
RG_WEB = f"/subscriptions/{SUB}/resourceGroups/rg-prod-web"
RG_WORKERS = f"/subscriptions/{SUB}/resourceGroups/rg-prod-workers"
VM1 = f"{RG_WEB}/providers/Microsoft.Compute/virtualMachines/vm-web-01"
VM2 = f"{RG_WEB}/providers/Microsoft.Compute/virtualMachines/vm-web-02"
SITE = f"{RG_WEB}/providers/Microsoft.Web/sites/app-checkout"
VMSS = f"{RG_WORKERS}/providers/Microsoft.Compute/virtualMachineScaleSets/vmss-workers"
COMPUTE = "2024-07-01"
WEB = "2023-12-01"
SCOPE = "https://management.azure.com/.default"
STEP_UP = {"access_token": {"acrs": {"essential": True, "value": "c1"}}}


# ---- tokens ------------------------------------------------------------------------------------
class Signer:
    def __init__(self, kid: str = "test-key") -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token(self, oid: str, **claims: Any) -> str:
        now = int(time.time())
        body: dict[str, Any] = {"aud": "https://management.azure.com", "iss": ISSUER, "tid": TENANT, "oid": oid,
                                "iat": now, "nbf": now, "exp": now + 3600, **claims}
        return jwt.encode({k: v for k, v in body.items() if v is not None}, self.key, "RS256",
                          headers={"kid": self.kid})


def user_claims(oid: str, upn: str) -> dict[str, Any]:
    return {"upn": upn, "appid": GATES_APP, "scp": "user_impersonation"}


PRINCIPALS = {
    AGENT: {"appid": AGENT_APP, "roles": []},
    ALICE: user_claims(ALICE, "alice@contoso.test"),
    BOB: user_claims(BOB, "bob@contoso.test"),
    MALLORY: user_claims(MALLORY, "mallory@contoso.test"),
}


class Credential:
    """A TokenCredential that mints for one principal; with `honours_claims` it answers a claims challenge
    the way Entra does, with the requested authentication context in `acrs`."""

    def __init__(self, signer: Signer, oid: str, honours_claims: bool = False) -> None:
        self.signer, self.oid, self.honours_claims = signer, oid, honours_claims
        self.claims_requested: list[str] = []

    def get_token(self, *scopes: str, claims: str | None = None, **kwargs: Any) -> AccessToken:
        assert scopes == (SCOPE,)
        extra = dict(PRINCIPALS[self.oid])
        if claims:
            self.claims_requested.append(claims)
            if self.honours_claims:
                extra["acrs"] = [json.loads(claims)["access_token"]["acrs"]["value"]]
        return AccessToken(self.signer.token(self.oid, **extra), int(time.time()) + 3600)


class StatusLog(SansIOHTTPPolicy[Any, Any]):
    """Sits after the retry policy: sees every attempt the pipeline makes."""

    def __init__(self) -> None:
        self.statuses: list[int] = []

    def on_response(self, request: Any, response: Any) -> None:
        self.statuses.append(response.http_response.status_code)


# ---- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("arm-tls")


@pytest.fixture(scope="module")
def module_arm(signer: Signer, tls_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArmStandIn]:
    with ArmStandIn(state_dir=tmp_path_factory.mktemp("arm-state"), tls_dir=tls_dir, jwks=signer.jwks(),
                    issuers=[ISSUER], operation_polls=2) as stand_in:
        yield stand_in


@pytest.fixture
def arm(module_arm: ArmStandIn) -> ArmStandIn:
    module_arm.reset()
    return module_arm


@pytest.fixture
def bundle(module_arm: ArmStandIn) -> str:
    return str(module_arm.authority.trust_bundle_path)


def client_for(arm: ArmStandIn, credential: Credential, bundle: str, status_log: StatusLog | None = None,
               retry_total: int = 3) -> PipelineClient[Any, Any]:
    policies: list[Any] = [
        RequestIdPolicy(),
        HeadersPolicy(),
        RetryPolicy(retry_total=retry_total, retry_backoff_factor=0.01),
        BearerTokenCredentialPolicy(credential, SCOPE),
    ]
    if status_log is not None:
        policies.append(status_log)
    transport = RequestsTransport(connection_verify=bundle, connection_timeout=5, read_timeout=10)
    return PipelineClient(base_url=arm.endpoint, policies=policies, transport=transport)


def run(client: PipelineClient[Any, Any], method: str, path: str, api_version: str | None = COMPUTE,
        body: Any = None) -> PipelineResponse[Any, Any]:
    params = {"api-version": api_version} if api_version else {}
    request = HttpRequest(method, f"{client._base_url}{path}", params=params, json=body)
    if method == "POST" and body is None:
        request.headers["Content-Length"] = "0"
    return client._pipeline.run(request, stream=False)


def error_of(response: PipelineResponse[Any, Any]) -> HttpResponseError:
    # HttpResponseError parses ARM's error JSON into `.error` (an ODataV4Format), as generated clients raise it.
    return HttpResponseError(response=response.http_response)


def poll(client: PipelineClient[Any, Any], initial: PipelineResponse[Any, Any],
         polling: LROBasePolling | None = None) -> LROPoller[Any]:
    poller: LROPoller[Any] = LROPoller(client, initial, lambda response: response, polling or LROBasePolling(0))
    poller.result(timeout=10)
    return poller


def async_operation_polling() -> LROBasePolling:
    # What azure-mgmt-core's ARMPolling does: read Azure-AsyncOperation first, then Location.
    return LROBasePolling(0, lro_algorithms=[
        OperationResourcePolling("azure-asyncoperation"), LocationPolling(), StatusCheckPolling()])


# ---- reads -------------------------------------------------------------------------------------
def test_the_agent_reads_a_vm_with_reader_on_the_subscription(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, AGENT), bundle) as client:
        response = run(client, "GET", VM1)
    http = response.http_response
    assert http.status_code == 200
    body = http.json()
    assert body["id"] == VM1
    assert body["type"] == "Microsoft.Compute/virtualMachines"
    assert body["properties"]["provisioningState"] == "Succeeded"
    assert http.headers["x-ms-request-id"]
    assert http.headers["x-ms-correlation-request-id"]
    assert http.headers["x-ms-client-request-id"] == response.http_request.headers["x-ms-client-request-id"]


def test_instance_view_reports_power_and_provisioning_state(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, AGENT), bundle) as client:
        view = run(client, "GET", f"{VM1}/instanceView").http_response.json()
    codes = [s["code"] for s in view["statuses"]]
    assert codes == ["ProvisioningState/succeeded", "PowerState/running"]


def test_expand_instance_view_embeds_it_in_the_vm(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, AGENT), bundle) as client:
        request = HttpRequest("GET", f"{arm.endpoint}{VM1}", params={"api-version": COMPUTE,
                                                                     "$expand": "instanceView"})
        body = client._pipeline.run(request).http_response.json()
    assert body["properties"]["instanceView"]["statuses"][1]["code"] == "PowerState/running"


def test_a_resource_group_reads_as_arm_writes_it(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, BOB), bundle) as client:
        body = run(client, "GET", RG_WEB, api_version="2021-04-01").http_response.json()
    assert body == {"id": RG_WEB, "name": "rg-prod-web", "type": "Microsoft.Resources/resourceGroups",
                    "location": "westeurope", "tags": {}, "properties": {"provisioningState": "Succeeded"}}


# ---- long-running operations -------------------------------------------------------------------
def test_a_restart_is_accepted_with_the_operation_headers_arm_sends(arm: ArmStandIn, signer: Signer,
                                                                    bundle: str) -> None:
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        http = run(client, "POST", f"{VM1}/restart").http_response
    assert http.status_code == 202
    assert "/providers/Microsoft.Compute/locations/westeurope/operations/" in http.headers["Azure-AsyncOperation"]
    assert "/providers/Microsoft.Compute/locations/westeurope/operationResults/" in http.headers["Location"]
    assert http.headers["Azure-AsyncOperation"].startswith(arm.endpoint)
    assert "api-version=2024-07-01" in http.headers["Azure-AsyncOperation"]
    assert http.headers["Retry-After"] == "0"
    assert arm.resource(VM1)["powerState"] == "starting"


def test_the_async_operation_is_in_progress_for_the_configured_polls_then_succeeds(
        arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        status_url = run(client, "POST", f"{VM1}/restart").http_response.headers["Azure-AsyncOperation"]
        statuses = []
        for _ in range(3):
            statuses.append(client._pipeline.run(HttpRequest("GET", status_url)).http_response.json()["status"])
            if statuses[-1] == "InProgress":
                assert arm.resource(VM1)["restartCount"] == 0
    assert statuses == ["InProgress", "InProgress", "Succeeded"]
    assert arm.resource(VM1)["restartCount"] == 1


def test_a_restart_polled_by_lro_base_polling_ends_with_the_vm_restarted(arm: ArmStandIn, signer: Signer,
                                                                         bundle: str) -> None:
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        poller = poll(client, run(client, "POST", f"{VM1}/restart"))
    assert poller.status() == "Succeeded"
    vm = arm.resource(VM1)
    assert vm["powerState"] == "running"
    assert vm["restartCount"] == 1
    assert vm["lastRestartTime"]
    assert arm.resource(VM2)["restartCount"] == 0


def test_a_restart_polled_through_azure_async_operation_ends_with_the_vm_restarted(
        arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        poller = poll(client, run(client, "POST", f"{VM1}/restart"), async_operation_polling())
    assert poller.status() == "Succeeded"
    assert arm.resource(VM1)["restartCount"] == 1


def test_the_activity_log_says_who_did_what_to_which_resource(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        poll(client, run(client, "POST", f"{VM1}/restart"))
    entries = [(e["principalId"], e["principalName"], e["action"], e["resourceId"], e["outcome"])
               for e in arm.activity()]
    restart = "Microsoft.Compute/virtualMachines/restart/action"
    assert entries == [(ALICE, "alice@contoso.test", restart, VM1, "Accepted"),
                       (ALICE, "alice@contoso.test", restart, VM1, "Succeeded")]


@pytest.mark.parametrize(("action", "power_state"), [("powerOff", "stopped"), ("deallocate", "deallocated")])
def test_stopping_actions_end_in_their_power_state(arm: ArmStandIn, signer: Signer, bundle: str, action: str,
                                                   power_state: str) -> None:
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        poll(client, run(client, "POST", f"{VM2}/{action}"))
        view = run(client, "GET", f"{VM2}/instanceView").http_response.json()
    assert view["statuses"][1]["code"] == f"PowerState/{power_state}"


def test_start_brings_a_deallocated_vm_back_to_running(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        poll(client, run(client, "POST", f"{VM2}/deallocate"))
        poll(client, run(client, "POST", f"{VM2}/start"))
    assert arm.resource(VM2)["powerState"] == "running"


def test_restarting_a_deallocated_vm_is_not_allowed(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        poll(client, run(client, "POST", f"{VM2}/deallocate"))
        http = run(client, "POST", f"{VM2}/restart").http_response
    assert http.status_code == 409
    assert http.json()["error"]["code"] == "OperationNotAllowed"


def test_an_operation_can_end_by_time_without_being_polled(signer: Signer, tls_dir: Path, tmp_path: Path) -> None:
    with ArmStandIn(state_dir=tmp_path, tls_dir=tls_dir, jwks=signer.jwks(), operation_seconds=0.0) as arm, \
            client_for(arm, Credential(signer, ALICE), str(arm.authority.trust_bundle_path)) as client:
        assert run(client, "POST", f"{VM1}/restart").http_response.status_code == 202
        assert arm.resource(VM1)["restartCount"] == 1


def test_a_failing_operation_reports_failed_and_changes_nothing(arm: ArmStandIn, signer: Signer,
                                                                bundle: str) -> None:
    arm.add_fault("operation_failure", resource=VM1, code="VMAgentStatusCommunicationError",
                  message="VM 'vm-web-01' has not reported status for VM agent or extensions.")
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        initial = run(client, "POST", f"{VM1}/restart")
        with pytest.raises(HttpResponseError) as failed:
            poll(client, initial, async_operation_polling())
    assert failed.value.error is not None
    assert failed.value.error.code == "VMAgentStatusCommunicationError"
    assert arm.resource(VM1)["restartCount"] == 0
    assert arm.activity()[-1]["outcome"] == "Failed"


def test_an_app_service_restart_answers_200_at_once(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        http = run(client, "POST", f"{SITE}/restart", api_version=WEB).http_response
    assert http.status_code == 200
    assert arm.resource(SITE)["restartCount"] == 1
    assert arm.activity()[-1]["action"] == "Microsoft.Web/sites/restart/action"


def test_scaling_a_scale_set_is_a_long_running_patch(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        initial = run(client, "PATCH", VMSS, body={"sku": {"capacity": 3}})
        assert initial.http_response.status_code == 200
        assert initial.http_response.json()["properties"]["provisioningState"] == "Updating"
        assert "Azure-AsyncOperation" in initial.http_response.headers
        poller = poll(client, initial, async_operation_polling())
        final = poller.result()
    assert final.http_response.json()["sku"]["capacity"] == 3
    scale_set = arm.resource(VMSS)
    assert (scale_set["capacity"], scale_set["provisioningState"]) == (3, "Succeeded")


def test_a_negative_capacity_is_an_invalid_parameter(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        http = run(client, "PATCH", VMSS, body={"sku": {"capacity": -1}}).http_response
    assert http.status_code == 400
    assert http.json()["error"] == {"code": "InvalidParameter", "target": "sku.capacity",
                                    "message": "The value of parameter sku.capacity is invalid."}
    assert arm.resource(VMSS)["capacity"] == 2


# ---- authorization -----------------------------------------------------------------------------
def test_the_agent_may_not_restart_and_gets_arms_authorization_failed(arm: ArmStandIn, signer: Signer,
                                                                      bundle: str) -> None:
    with client_for(arm, Credential(signer, AGENT), bundle) as client:
        response = run(client, "POST", f"{VM1}/restart")
    assert response.http_response.status_code == 403
    error = error_of(response)
    assert error.error is not None
    assert error.error.code == "AuthorizationFailed"
    assert error.error.message == (
        f"The client '{AGENT_APP}' with object id '{AGENT}' does not have authorization to perform action "
        f"'Microsoft.Compute/virtualMachines/restart/action' over scope '{VM1}' or the scope is invalid. "
        "If access was recently granted, please refresh your credentials.")
    assert arm.resource(VM1)["powerState"] == "running"


def test_a_refused_write_is_in_the_activity_log(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, BOB), bundle) as client:
        run(client, "POST", f"{SITE}/restart", api_version=WEB)
    [entry] = arm.activity()
    assert (entry["principalId"], entry["outcome"], entry["code"]) == (BOB, "Failed", "AuthorizationFailed")
    assert arm.resource(SITE)["restartCount"] == 0


def test_a_user_is_named_by_upn_in_authorization_failed(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, MALLORY), bundle) as client:
        body = run(client, "GET", VM1).http_response.json()
    assert body["error"]["message"].startswith(
        f"The client 'mallory@contoso.test' with object id '{MALLORY}' does not have authorization to perform "
        "action 'Microsoft.Compute/virtualMachines/read'")


def test_authorization_is_checked_before_existence(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, MALLORY), bundle) as client:
        http = run(client, "GET", f"{RG_WEB}/providers/Microsoft.Compute/virtualMachines/vm-nope").http_response
    assert http.status_code == 403


def test_alice_may_scale_the_workers_as_contributor(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        assert run(client, "PATCH", VMSS, body={"sku": {"capacity": 4}}).http_response.status_code == 200


def test_bob_may_read_but_not_scale(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, BOB), bundle) as client:
        assert run(client, "GET", VMSS).http_response.status_code == 200
        denied = run(client, "PATCH", VMSS, body={"sku": {"capacity": 4}}).http_response
    assert denied.json()["error"]["code"] == "AuthorizationFailed"
    assert "'Microsoft.Compute/virtualMachineScaleSets/write'" in denied.json()["error"]["message"]


def test_a_role_assignment_added_at_run_time_takes_effect(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    arm.assign_role(AGENT, "Virtual Machine Contributor", VM1)
    with client_for(arm, Credential(signer, AGENT), bundle) as client:
        assert run(client, "POST", f"{VM1}/restart").http_response.status_code == 202
        assert run(client, "POST", f"{VM2}/restart").http_response.status_code == 403


def test_a_removed_role_assignment_stops_working(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    assert arm.remove_role_assignments(ALICE, "Virtual Machine Contributor", RG_WEB) == 1
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        assert run(client, "POST", f"{VM1}/restart").http_response.status_code == 403


# ---- locks -------------------------------------------------------------------------------------
def test_a_read_only_lock_refuses_writes_with_scope_locked(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    arm.add_lock(RG_WEB, "ReadOnly")
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        http = run(client, "POST", f"{VM1}/restart").http_response
        read = run(client, "GET", VM1).http_response
    assert http.status_code == 409
    assert http.json()["error"] == {
        "code": "ScopeLocked",
        "message": f"The scope '{VM1}' cannot perform write operation because following scope(s) are locked: "
                   f"'{RG_WEB}'. Please remove the lock and try again."}
    assert read.status_code == 200
    assert arm.resource(VM1)["restartCount"] == 0


def test_a_can_not_delete_lock_allows_actions(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    arm.add_lock(VM1, "CanNotDelete")
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        assert run(client, "POST", f"{VM1}/restart").http_response.status_code == 202


# ---- faults: throttling and claims challenges --------------------------------------------------
def test_a_throttled_request_is_retried_after_retry_after_and_succeeds(arm: ArmStandIn, signer: Signer,
                                                                       bundle: str) -> None:
    arm.add_fault("throttle", count=1, retry_after=1)
    statuses = StatusLog()
    with client_for(arm, Credential(signer, AGENT), bundle, statuses) as client:
        http = run(client, "GET", VM1).http_response
    assert http.status_code == 200
    assert statuses.statuses == [429, 200]


def test_a_throttled_answer_carries_retry_after_and_arms_error(arm: ArmStandIn, signer: Signer,
                                                              bundle: str) -> None:
    arm.add_fault("throttle", count=1, retry_after=7)
    with client_for(arm, Credential(signer, AGENT), bundle, retry_total=0) as client:
        http = run(client, "GET", VM1).http_response
    assert http.status_code == 429
    assert http.headers["Retry-After"] == "7"
    assert http.json()["error"]["code"] == "SubscriptionRequestsThrottled"


def test_a_claims_challenge_is_a_401_with_the_claims_in_www_authenticate(arm: ArmStandIn, signer: Signer,
                                                                         bundle: str) -> None:
    arm.add_fault("claims_challenge", principal=AGENT, claims=STEP_UP)
    credential = Credential(signer, AGENT)
    with client_for(arm, credential, bundle) as client:
        http = run(client, "POST", f"{VM1}/restart").http_response
    assert http.status_code == 401
    challenge = http.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer authorization_uri="https://login.microsoftonline.com/common/oauth2/'
                                'authorize", error="insufficient_claims", claims="')
    encoded = challenge.split('claims="')[1].rstrip('"')
    assert json.loads(base64.b64decode(encoded)) == STEP_UP
    # azure-core's BearerTokenCredentialPolicy asked the credential once more, with the claims.
    assert [json.loads(c) for c in credential.claims_requested] == [STEP_UP]


def test_a_token_carrying_the_requested_claims_passes_the_challenge(arm: ArmStandIn, signer: Signer,
                                                                   bundle: str) -> None:
    arm.add_fault("claims_challenge", principal=ALICE, claims=STEP_UP)
    statuses = StatusLog()
    with client_for(arm, Credential(signer, ALICE, honours_claims=True), bundle, statuses) as client:
        http = run(client, "POST", f"{VM1}/restart").http_response
    assert http.status_code == 202
    assert statuses.statuses == [401, 202]


def test_a_claims_challenge_for_one_principal_leaves_others_alone(arm: ArmStandIn, signer: Signer,
                                                                 bundle: str) -> None:
    arm.add_fault("claims_challenge", principal=ALICE, claims=STEP_UP)
    with client_for(arm, Credential(signer, BOB), bundle) as client:
        assert run(client, "GET", VM1).http_response.status_code == 200


# ---- authentication ----------------------------------------------------------------------------
def raw(arm: ArmStandIn, bundle: str, path: str, token: str | None, params: dict[str, str] | None = None,
        method: str = "GET") -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{arm.endpoint}{path}", headers=headers, verify=bundle, timeout=10,
                            params={"api-version": COMPUTE} if params is None else params)


def test_a_token_signed_by_an_unknown_key_is_an_invalid_authentication_token(arm: ArmStandIn, bundle: str) -> None:
    forged = Signer(kid="test-key").token(AGENT, appid=AGENT_APP)
    response = raw(arm, bundle, VM1, forged)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert response.headers["WWW-Authenticate"].startswith('Bearer authorization_uri="https://login.windows.net/", '
                                                           'error="invalid_token"')


def test_an_expired_token_is_an_expired_authentication_token(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    token = signer.token(AGENT, appid=AGENT_APP, exp=int(time.time()) - 3600)
    response = raw(arm, bundle, VM1, token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "ExpiredAuthenticationToken"


def test_a_token_for_another_audience_is_refused(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    response = raw(arm, bundle, VM1, signer.token(AGENT, aud="api://sre-gates"))
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "wrong audience or resource 'api://sre-gates'" in response.json()["error"]["message"]


def test_the_classic_management_audience_is_accepted(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    token = signer.token(AGENT, appid=AGENT_APP, aud="https://management.core.windows.net/")
    assert raw(arm, bundle, VM1, token).status_code == 200


def test_a_token_from_an_untrusted_issuer_is_refused(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    response = raw(arm, bundle, VM1, signer.token(AGENT, iss="https://sts.evil.test/"))
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_a_token_from_another_tenant_is_refused_for_this_subscription(arm: ArmStandIn, signer: Signer,
                                                                      bundle: str) -> None:
    response = raw(arm, bundle, VM1, signer.token(AGENT, appid=AGENT_APP, tid=str(uuid.uuid4())))
    assert (response.status_code, response.json()["error"]["code"]) == (401, "InvalidAuthenticationTokenTenant")


def test_garbage_in_place_of_a_token_is_an_invalid_authentication_token(arm: ArmStandIn, bundle: str) -> None:
    response = raw(arm, bundle, VM1, "not-a-jwt")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "InvalidAuthenticationToken")


def test_a_missing_authorization_header_is_authentication_failed(arm: ArmStandIn, bundle: str) -> None:
    response = raw(arm, bundle, VM1, None)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "AuthenticationFailed")
    assert "WWW-Authenticate" in response.headers


# ---- malformed requests ------------------------------------------------------------------------
def test_a_request_without_api_version_is_refused(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, AGENT), bundle) as client:
        http = run(client, "GET", VM1, api_version=None).http_response
    assert http.status_code == 400
    assert http.json() == {"error": {"code": "MissingApiVersionParameter", "message":
                                     "The api-version query parameter (?api-version=) is required for all requests."}}


def test_an_unknown_vm_is_resource_not_found(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, AGENT), bundle) as client:
        http = run(client, "GET", f"{RG_WEB}/providers/Microsoft.Compute/virtualMachines/vm-web-99").http_response
    assert http.status_code == 404
    assert http.json()["error"] == {
        "code": "ResourceNotFound",
        "message": "The Resource 'Microsoft.Compute/virtualMachines/vm-web-99' under resource group 'rg-prod-web' "
                   "was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"}


def test_an_unknown_resource_group_is_resource_group_not_found(arm: ArmStandIn, signer: Signer,
                                                               bundle: str) -> None:
    with client_for(arm, Credential(signer, AGENT), bundle) as client:
        http = run(client, "GET", f"/subscriptions/{SUB}/resourceGroups/rg-nope/providers/Microsoft.Compute/"
                                  "virtualMachines/vm-web-01").http_response
    assert (http.status_code, http.json()["error"]["code"]) == (404, "ResourceGroupNotFound")


def test_an_unknown_path_is_a_json_404(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    response = raw(arm, bundle, f"/subscriptions/{SUB}/whatever/else", signer.token(AGENT, appid=AGENT_APP))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "InvalidRequestUri"


def test_an_unknown_action_is_an_invalid_resource_type(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    response = raw(arm, bundle, f"{VM1}/reimageEverything", signer.token(ALICE), method="POST")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "InvalidResourceType")


def test_a_body_that_is_not_json_is_invalid_request_content(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    response = requests.patch(f"{arm.endpoint}{VMSS}", params={"api-version": COMPUTE}, data=b"{not json",
                              headers={"Authorization": f"Bearer {signer.token(ALICE)}",
                                       "Content-Type": "application/json"}, verify=bundle, timeout=10)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "InvalidRequestContent")


# ---- the control API and reset -----------------------------------------------------------------
def test_faults_and_locks_can_be_arranged_over_http(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    control = f"{arm.endpoint}/_standin"
    assert requests.post(f"{control}/faults", json={"kind": "throttle", "count": 1, "retry_after": 3},
                         verify=bundle, timeout=10).status_code == 201
    assert requests.post(f"{control}/locks", json={"scope": RG_WEB, "level": "ReadOnly", "name": "freeze"},
                         verify=bundle, timeout=10).status_code == 201
    token = signer.token(ALICE)
    assert raw(arm, bundle, VM1, token).status_code == 429
    assert raw(arm, bundle, f"{VM1}/restart", token, method="POST").status_code == 409
    assert requests.delete(f"{control}/locks/freeze", verify=bundle, timeout=10).status_code == 204
    assert raw(arm, bundle, f"{VM1}/restart", token, method="POST").status_code == 202
    activity = requests.get(f"{control}/activity", verify=bundle, timeout=10).json()["value"]
    assert [e["outcome"] for e in activity] == ["Failed", "Accepted"]


def test_the_control_api_explains_bad_input(arm: ArmStandIn, bundle: str) -> None:
    response = requests.post(f"{arm.endpoint}/_standin/faults", json={"kind": "earthquake"}, verify=bundle,
                             timeout=10)
    assert response.status_code == 400
    assert "fault kind" in response.json()["error"]["message"]


def test_reset_restores_the_fixture(arm: ArmStandIn, signer: Signer, bundle: str) -> None:
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        poll(client, run(client, "POST", f"{VM1}/restart"))
    arm.add_lock(RG_WEB)
    arm.reset()
    assert arm.resource(VM1)["restartCount"] == 0
    assert arm.activity() == []
    with client_for(arm, Credential(signer, ALICE), bundle) as client:
        assert run(client, "POST", f"{VM1}/restart").http_response.status_code == 202


def test_the_fixture_seeds_the_readme_identities_and_resources(arm: ArmStandIn) -> None:
    assignments = requests.get(f"{arm.endpoint}/_standin/role-assignments",
                               verify=str(arm.authority.trust_bundle_path), timeout=10).json()["value"]
    held = sorted((a["properties"]["principalId"], a["properties"]["roleDefinitionName"], a["properties"]["scope"])
                  for a in assignments)
    assert held == sorted([
        (AGENT, "Reader", f"/subscriptions/{SUB}"),
        (ALICE, "Virtual Machine Contributor", RG_WEB),
        (ALICE, "Website Contributor", RG_WEB),
        (ALICE, "Contributor", RG_WORKERS),
        (ALICE, "Contributor", f"/subscriptions/{SUB}/resourceGroups/rg-prod-data"),
        (ALICE, "Contributor", f"{RG_WEB}/providers/Microsoft.Web/serverfarms/plan-prod-web"),
        (ALICE, "Contributor", f"{RG_WEB}/providers/Microsoft.App/containerApps/ca-api"),
        (ALICE, "Contributor", f"{RG_WEB}/providers/Microsoft.Cdn/profiles/fd-prod"),
        (BOB, "Reader", f"/subscriptions/{SUB}"),
    ])
    assert arm.resource(VMSS)["capacity"] == 2
    assert {arm.resource(r)["type"] for r in (VM1, VM2, SITE, VMSS)} == {
        "Microsoft.Compute/virtualMachines", "Microsoft.Web/sites", "Microsoft.Compute/virtualMachineScaleSets"}


def test_request_ids_are_fresh_and_the_correlation_id_is_echoed(arm: ArmStandIn, signer: Signer,
                                                                bundle: str) -> None:
    correlation = str(uuid.uuid4())
    headers = {"Authorization": f"Bearer {signer.token(AGENT, appid=AGENT_APP)}",
               "x-ms-correlation-request-id": correlation}
    first, second = (requests.get(f"{arm.endpoint}{VM1}", params={"api-version": COMPUTE}, headers=headers,
                                  verify=bundle, timeout=10) for _ in range(2))
    assert first.headers["x-ms-correlation-request-id"] == correlation
    assert first.headers["x-ms-request-id"] != second.headers["x-ms-request-id"]
