"""The Entra ID stand-in issues the tokens Entra issues, to the real MSAL over real TLS."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import jwt
import msal
import pytest
import requests
from azure.identity import ClientSecretCredential

from local_azure.entra import (
    ARM_SCOPE_DEFAULT,
    ARM_USER_IMPERSONATION,
    SRE_AGENT_CLIENT_ID,
    SRE_GATES_CLIENT_ID,
    SRE_GATES_USER_IMPERSONATION,
    EntraStandIn,
    Lifetimes,
)
from local_azure.entra.directory import DEFAULT_FIXTURE
from local_azure.entra.testing import confidential_app, skip_user_realm_discovery, user_token, user_token_result

ALICE = "a11ce000-0000-4000-8000-000000000001"
TENANT = "72f988bf-0000-4000-8000-00000000c0de"
AGENT_SP = "a9e77000-0000-4000-8000-0000000000aa"


@pytest.fixture(scope="module")
def entra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EntraStandIn]:
    with EntraStandIn(state_dir=tmp_path_factory.mktemp("entra")) as stand_in:
        skip_user_realm_discovery(stand_in.authority)
        yield stand_in


@pytest.fixture(autouse=True)
def trust_local_ca(entra: EntraStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in entra.certificate_authority.client_environment().items():
        monkeypatch.setenv(name, value)


def secret(entra: EntraStandIn, client_id: str) -> str:
    app = entra.directory.app(client_id)
    assert app is not None
    return app.client_secrets[0]


def gates(entra: EntraStandIn) -> msal.ConfidentialClientApplication:
    return confidential_app(entra.authority, SRE_GATES_CLIENT_ID, secret(entra, SRE_GATES_CLIENT_ID))


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def alice_token(entra: EntraStandIn, scope: str = SRE_GATES_USER_IMPERSONATION) -> dict:
    return gates(entra).acquire_token_by_username_password("alice@contoso.test", "Passw0rd!", scopes=[scope])


def test_client_credentials_give_the_agent_an_app_token_for_arm(entra: EntraStandIn) -> None:
    agent = confidential_app(entra.authority, SRE_AGENT_CLIENT_ID, secret(entra, SRE_AGENT_CLIENT_ID))
    result = agent.acquire_token_for_client([ARM_SCOPE_DEFAULT])
    claims = claims_of(result["access_token"])
    assert claims["aud"] == "https://management.azure.com"
    assert claims["idtyp"] == "app"
    assert claims["oid"] == AGENT_SP
    assert claims["appid"] == claims["azp"] == SRE_AGENT_CLIENT_ID
    assert "scp" not in claims


def test_client_secret_basic_authenticates_like_client_secret_post(entra: EntraStandIn) -> None:
    response = requests.post(entra.token_endpoint, auth=(SRE_AGENT_CLIENT_ID, secret(entra, SRE_AGENT_CLIENT_ID)),
                             data={"grant_type": "client_credentials", "scope": ARM_SCOPE_DEFAULT}, timeout=10)
    assert response.status_code == 200
    assert claims_of(response.json()["access_token"])["appid"] == SRE_AGENT_CLIENT_ID


def test_password_grant_gives_alice_a_token_for_the_gates_api(entra: EntraStandIn) -> None:
    claims = claims_of(alice_token(entra)["access_token"])
    assert claims["aud"] == SRE_GATES_CLIENT_ID
    assert claims["scp"] == "user_impersonation"
    assert claims["oid"] == ALICE
    assert claims["tid"] == TENANT
    assert claims["preferred_username"] == "alice@contoso.test"
    assert claims["iss"] == entra.issuer
    assert claims["ver"] == "2.0"


def test_alices_token_carries_her_app_role(entra: EntraStandIn) -> None:
    assert claims_of(alice_token(entra)["access_token"])["roles"] == ["Gates.Approver"]


def test_mallorys_token_carries_no_role(entra: EntraStandIn) -> None:
    result = gates(entra).acquire_token_by_username_password("mallory@contoso.test", "Passw0rd!",
                                                              scopes=[SRE_GATES_USER_IMPERSONATION])
    assert "roles" not in claims_of(result["access_token"])


def test_password_grant_returns_an_id_token_and_a_refresh_token(entra: EntraStandIn) -> None:
    result = alice_token(entra)
    assert result["id_token_claims"]["aud"] == SRE_GATES_CLIENT_ID
    assert result["id_token_claims"]["oid"] == ALICE
    assert result["refresh_token"]


def test_access_tokens_live_about_an_hour_by_default(entra: EntraStandIn) -> None:
    claims = claims_of(alice_token(entra)["access_token"])
    assert 60 * 60 <= claims["exp"] - claims["iat"] <= 90 * 60
    assert claims["nbf"] <= claims["iat"]
    assert claims["uti"]


def test_refresh_token_gets_an_access_token_for_another_resource(entra: EntraStandIn) -> None:
    refresh_token = alice_token(entra)["refresh_token"]
    result = gates(entra).acquire_token_by_refresh_token(refresh_token, scopes=[ARM_USER_IMPERSONATION])
    claims = claims_of(result["access_token"])
    assert claims["aud"] == "https://management.azure.com"
    assert claims["oid"] == ALICE


def test_a_token_validates_with_pyjwt_against_discovery_and_jwks(entra: EntraStandIn) -> None:
    token = alice_token(entra)["access_token"]
    metadata = requests.get(f"{entra.issuer}/.well-known/openid-configuration", timeout=10).json()
    assert metadata["issuer"] == entra.issuer
    signing_key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key.key, algorithms=["RS256"], audience=SRE_GATES_CLIENT_ID,
                        issuer=metadata["issuer"])
    assert claims["oid"] == ALICE


def test_discovery_names_the_endpoints_msal_and_easy_auth_use(entra: EntraStandIn) -> None:
    metadata = requests.get(f"{entra.issuer}/.well-known/openid-configuration", timeout=10).json()
    assert metadata["token_endpoint"] == entra.token_endpoint
    assert metadata["authorization_endpoint"] == f"{entra.authority}/oauth2/v2.0/authorize"
    assert metadata["jwks_uri"] == entra.jwks_uri
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]


def test_without_the_local_ca_tls_verification_fails(entra: EntraStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in entra.certificate_authority.client_environment():
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(entra.jwks_uri, timeout=10)


def test_issue_token_mints_a_user_token_other_stand_ins_can_validate(entra: EntraStandIn) -> None:
    token = entra.issue_token(ARM_USER_IMPERSONATION, client_id=SRE_GATES_CLIENT_ID, user="bob@contoso.test")
    claims = jwt.decode(token, jwt.PyJWKClient(entra.jwks_uri).get_signing_key_from_jwt(token).key,
                        algorithms=["RS256"], audience="https://management.azure.com", issuer=entra.issuer)
    assert claims["oid"] == "b0b00000-0000-4000-8000-000000000002"
    assert claims["scp"] == "user_impersonation"


def test_access_token_lifetime_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with EntraStandIn(state_dir=tmp_path, lifetimes=Lifetimes(access_token=dt.timedelta(minutes=2))) as short:
        for name, value in short.certificate_authority.client_environment().items():
            monkeypatch.setenv(name, value)
        agent = confidential_app(short.authority, SRE_AGENT_CLIENT_ID, secret(short, SRE_AGENT_CLIENT_ID))
        result = agent.acquire_token_for_client([ARM_SCOPE_DEFAULT])
    claims = claims_of(result["access_token"])
    assert claims["exp"] - claims["iat"] == 120
    assert result["expires_in"] == 120


def test_the_signing_key_survives_a_restart(tmp_path: Path) -> None:
    with EntraStandIn(state_dir=tmp_path) as first:
        kid = first.key.kid
    with EntraStandIn(state_dir=tmp_path) as second:
        assert second.key.kid == kid


def test_azure_identity_client_secret_credential_gets_the_agents_arm_token(entra: EntraStandIn) -> None:
    credential = ClientSecretCredential(entra.tenant_id, SRE_AGENT_CLIENT_ID, secret(entra, SRE_AGENT_CLIENT_ID),
                                        authority=entra.base_url, disable_instance_discovery=True)
    access = credential.get_token(ARM_SCOPE_DEFAULT)
    assert claims_of(access.token)["oid"] == AGENT_SP
    assert access.expires_on > dt.datetime.now(dt.UTC).timestamp()


@pytest.mark.filterwarnings("ignore:This API has been deprecated for public client flows")
def test_msal_public_client_signs_in_when_the_app_allows_public_flows(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    document = json.loads(DEFAULT_FIXTURE.read_text())
    document["apps"][0]["allow_public_client"] = True
    fixture = tmp_path / "entra.json"
    fixture.write_text(json.dumps(document))
    with EntraStandIn(fixture, state_dir=tmp_path / "state") as public:
        for name, value in public.certificate_authority.client_environment().items():
            monkeypatch.setenv(name, value)
        token = user_token(public.authority, SRE_GATES_CLIENT_ID, None, "alice@contoso.test", "Passw0rd!",
                           SRE_GATES_USER_IMPERSONATION)
    claims = claims_of(token)
    assert (claims["oid"], claims["azpacr"]) == (ALICE, "0")


@pytest.mark.filterwarnings("ignore:This API has been deprecated for public client flows")
def test_a_confidential_app_refuses_a_public_client_sign_in(entra: EntraStandIn) -> None:
    result = user_token_result(entra.authority, SRE_GATES_CLIENT_ID, None, "alice@contoso.test", "Passw0rd!",
                               SRE_GATES_USER_IMPERSONATION)
    assert (result["error"], result["error_codes"]) == ("invalid_client", [7000218])
