"""The ARM stand-in accepts what the Entra ID stand-in issues through MSAL, and authorises the principal the
token names: the agent by its service principal, a user reached by on-behalf-of by her own role assignments."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msal
import pytest
import requests

from local_azure.arm import ArmStandIn
from local_azure.tls import LocalCertificateAuthority
from tests.local_azure.test_arm import AGENT, AGENT_APP, ALICE, COMPUTE, GATES_APP, VM1

entra_module = pytest.importorskip("local_azure.entra.server")

AGENT_SECRET = "local-only-sre-agent-secret-not-for-azure"
GATES_SECRET = "local-only-sre-gates-secret-not-for-azure"
ARM_DEFAULT = "https://management.azure.com/.default"
ARM_DELEGATED = "https://management.azure.com/user_impersonation"


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> LocalCertificateAuthority:
    return LocalCertificateAuthority.ensure(tmp_path_factory.mktemp("entra-arm-tls"))


@pytest.fixture(scope="module")
def entra(authority: LocalCertificateAuthority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with entra_module.EntraStandIn(state_dir=tmp_path_factory.mktemp("entra"),
                                   certificate_authority=authority) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def arm(entra: Any, authority: LocalCertificateAuthority,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArmStandIn]:
    with ArmStandIn(state_dir=tmp_path_factory.mktemp("arm"), jwks_uri=entra.jwks_uri, issuers=[entra.issuer],
                    certificate_authority=authority) as stand_in:
        yield stand_in


@pytest.fixture
def trusted(arm: ArmStandIn, monkeypatch: pytest.MonkeyPatch) -> ArmStandIn:
    arm.reset()
    for name, value in arm.client_environment().items():
        monkeypatch.setenv(name, value)
    return arm


def confidential(entra: Any, client_id: str, secret: str) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(client_id, client_credential=secret, authority=entra.authority,
                                              instance_discovery=False)


def token_of(result: dict[str, Any]) -> str:
    assert "access_token" in result, result
    return str(result["access_token"])


def post(arm: ArmStandIn, path: str, token: str) -> requests.Response:
    return requests.post(f"{arm.endpoint}{path}", params={"api-version": COMPUTE}, timeout=10,
                         headers={"Authorization": f"Bearer {token}", "Content-Length": "0"},
                         verify=str(arm.authority.trust_bundle_path))


def test_the_agents_own_token_reads_but_may_not_restart(trusted: ArmStandIn, entra: Any) -> None:
    token = token_of(confidential(entra, AGENT_APP, AGENT_SECRET).acquire_token_for_client([ARM_DEFAULT]))
    read = requests.get(f"{trusted.endpoint}{VM1}", params={"api-version": COMPUTE}, timeout=10,
                        headers={"Authorization": f"Bearer {token}"}, verify=str(trusted.authority.trust_bundle_path))
    assert read.status_code == 200
    denied = post(trusted, f"{VM1}/restart", token)
    assert denied.json()["error"]["code"] == "AuthorizationFailed"
    assert f"The client '{AGENT_APP}' with object id '{AGENT}'" in denied.json()["error"]["message"]


def test_an_on_behalf_of_token_acts_as_alice(trusted: ArmStandIn, entra: Any) -> None:
    gates = confidential(entra, GATES_APP, GATES_SECRET)
    # Alice's sign-in to the app is not what is under test here: the Entra stand-in issues her token directly.
    user_token = entra.issue_token("api://sre-gates/user_impersonation", client_id=GATES_APP,
                                   user="alice@contoso.test")
    delegated = token_of(gates.acquire_token_on_behalf_of(user_token, [ARM_DELEGATED]))
    assert post(trusted, f"{VM1}/restart", delegated).status_code == 202
    [entry] = trusted.activity()
    assert (entry["principalId"], entry["principalName"]) == (ALICE, "alice@contoso.test")
