"""The on-behalf-of grant: the credential gate borrows a person's access through the real MSAL."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import jwt
import msal
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from local_azure.entra import (
    ARM_SCOPE_DEFAULT,
    ARM_USER_IMPERSONATION,
    SRE_AGENT_CLIENT_ID,
    SRE_GATES_CLIENT_ID,
    SRE_GATES_USER_IMPERSONATION,
    EntraStandIn,
)
from local_azure.entra.directory import DEFAULT_FIXTURE
from local_azure.entra.testing import confidential_app, skip_user_realm_discovery

ALICE = "a11ce000-0000-4000-8000-000000000001"
ARM = "https://management.azure.com"


@pytest.fixture(scope="module")
def entra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EntraStandIn]:
    with EntraStandIn(state_dir=tmp_path_factory.mktemp("entra")) as stand_in:
        skip_user_realm_discovery(stand_in.authority)
        yield stand_in


@pytest.fixture(autouse=True)
def trust_and_no_leftover_faults(entra: EntraStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in entra.certificate_authority.client_environment().items():
        monkeypatch.setenv(name, value)
    yield
    entra.clear_faults()


def secret(entra: EntraStandIn, client_id: str = SRE_GATES_CLIENT_ID) -> str:
    app = entra.directory.app(client_id)
    assert app is not None
    return app.client_secrets[0]


def gates(entra: EntraStandIn) -> msal.ConfidentialClientApplication:
    return confidential_app(entra.authority, SRE_GATES_CLIENT_ID, secret(entra))


def user_token(entra: EntraStandIn, username: str = "alice@contoso.test") -> str:
    result = gates(entra).acquire_token_by_username_password(username, "Passw0rd!",
                                                              scopes=[SRE_GATES_USER_IMPERSONATION])
    return str(result["access_token"])


def obo(entra: EntraStandIn, assertion: str, claims_challenge: str | None = None) -> dict:
    return gates(entra).acquire_token_on_behalf_of(assertion, [ARM_USER_IMPERSONATION],
                                                   claims_challenge=claims_challenge)


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_msal_obo_posts_the_jwt_bearer_grant_design_describes(entra: EntraStandIn) -> None:
    obo(entra, user_token(entra))
    posted = entra.token_requests[-1]
    assert posted["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert posted["requested_token_use"] == "on_behalf_of"
    assert posted["assertion"] == "***"  # present, and masked in the record
    assert set(posted["scope"].split()) == {ARM_USER_IMPERSONATION, "offline_access", "openid", "profile"}
    assert posted["client_id"] == SRE_GATES_CLIENT_ID


def test_obo_carries_the_users_identity_into_an_arm_token(entra: EntraStandIn) -> None:
    incoming = claims_of(user_token(entra))
    claims = claims_of(obo(entra, user_token(entra))["access_token"])
    assert claims["aud"] == ARM
    assert claims["scp"] == "user_impersonation"
    assert claims["oid"] == incoming["oid"] == ALICE
    assert (claims["name"], claims["preferred_username"], claims["tid"]) == (
        incoming["name"], incoming["preferred_username"], incoming["tid"])
    assert claims["appid"] == SRE_GATES_CLIENT_ID


def test_obo_gives_bob_his_own_identity(entra: EntraStandIn) -> None:
    claims = claims_of(obo(entra, user_token(entra, "bob@contoso.test"))["access_token"])
    assert claims["oid"] == "b0b00000-0000-4000-8000-000000000002"


def test_obo_accepts_an_assertion_addressed_to_the_identifier_uri(entra: EntraStandIn) -> None:
    assertion = entra.issue_token(SRE_GATES_USER_IMPERSONATION, client_id=SRE_GATES_CLIENT_ID, user=ALICE,
                                  claims={"aud": "api://sre-gates"})
    assert "access_token" in obo(entra, assertion)


def test_the_arm_token_from_obo_validates_against_the_jwks(entra: EntraStandIn) -> None:
    token = obo(entra, user_token(entra))["access_token"]
    key = jwt.PyJWKClient(entra.jwks_uri).get_signing_key_from_jwt(token).key
    assert jwt.decode(token, key, algorithms=["RS256"], audience=ARM, issuer=entra.issuer)["oid"] == ALICE


def test_obo_refuses_an_assertion_for_another_audience(entra: EntraStandIn) -> None:
    arm_token = entra.issue_token(ARM_USER_IMPERSONATION, client_id=SRE_GATES_CLIENT_ID, user=ALICE)
    result = obo(entra, arm_token)
    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [50013]
    assert result["error_description"].startswith("AADSTS50013: Assertion audience does not match")


def test_obo_refuses_an_expired_assertion(entra: EntraStandIn) -> None:
    expired = entra.issue_token(SRE_GATES_USER_IMPERSONATION, client_id=SRE_GATES_CLIENT_ID, user=ALICE,
                                issued_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2),
                                lifetime=dt.timedelta(hours=1))
    result = obo(entra, expired)
    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [500133]


def test_obo_refuses_an_assertion_not_yet_valid(entra: EntraStandIn) -> None:
    early = entra.issue_token(SRE_GATES_USER_IMPERSONATION, client_id=SRE_GATES_CLIENT_ID, user=ALICE,
                              issued_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    assert obo(entra, early)["error_codes"] == [500133]


def test_obo_refuses_an_assertion_signed_by_another_key(entra: EntraStandIn) -> None:
    genuine = claims_of(user_token(entra))
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(genuine, forger, algorithm="RS256", headers={"kid": entra.key.kid})
    result = obo(entra, forged)
    assert result["error"] == "invalid_grant"
    assert "signature" in result["error_description"]


def test_obo_refuses_an_unsigned_assertion(entra: EntraStandIn) -> None:
    unsigned = jwt.encode(claims_of(user_token(entra)), None, algorithm="none", headers={"kid": entra.key.kid})
    assert obo(entra, unsigned)["error"] in ("invalid_grant", "invalid_request")


def test_obo_refuses_an_app_token_as_the_assertion(entra: EntraStandIn) -> None:
    app_token = entra.issue_token("api://sre-gates/.default", client_id=SRE_AGENT_CLIENT_ID)
    assert obo(entra, app_token)["error"] == "invalid_grant"


def test_obo_refuses_a_malformed_assertion(entra: EntraStandIn) -> None:
    result = obo(entra, "not-a-jwt")
    assert result["error"] == "invalid_request"
    assert result["error_codes"] == [50027]


def test_obo_with_a_wrong_client_secret_is_invalid_client(entra: EntraStandIn) -> None:
    impostor = confidential_app(entra.authority, SRE_GATES_CLIENT_ID, "not-the-secret")
    result = impostor.acquire_token_on_behalf_of(user_token(entra), [ARM_USER_IMPERSONATION])
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]


def test_interaction_required_surfaces_the_claims_challenge_in_msals_result(entra: EntraStandIn) -> None:
    challenge = '{"access_token":{"capolids":{"essential":true,"values":["c0de0000-0000-4000-8000-00000000c0a1"]}}}'
    entra.add_fault("interaction_required", grant="on_behalf_of", user="alice@contoso.test", claims=challenge)
    result = obo(entra, user_token(entra))
    assert result["error"] == "interaction_required"
    assert result["error_codes"] == [50076]
    assert result["suberror"] == "basic_action"
    assert result["claims"] == challenge


def test_a_fault_is_spent_after_its_count(entra: EntraStandIn) -> None:
    entra.add_fault("interaction_required", grant="on_behalf_of", count=1)
    assertion = user_token(entra)
    assert obo(entra, assertion)["error"] == "interaction_required"
    assert "access_token" in obo(entra, assertion)


def test_msal_passes_the_claims_challenge_back_to_entra(entra: EntraStandIn) -> None:
    challenge = '{"access_token":{"capolids":{"essential":true,"values":["c0de0000-0000-4000-8000-00000000c0a1"]}}}'
    obo(entra, user_token(entra), claims_challenge=challenge)
    assert json.loads(entra.token_requests[-1]["claims"]) == json.loads(challenge)


def test_mfa_enrollment_fault_uses_aadsts50079(entra: EntraStandIn) -> None:
    entra.add_fault("interaction_required", grant="on_behalf_of", code=50079)
    assert obo(entra, user_token(entra))["error_codes"] == [50079]


def test_consent_required_is_reported_as_entra_does(entra: EntraStandIn) -> None:
    entra.add_fault("consent_required", grant="on_behalf_of")
    result = obo(entra, user_token(entra))
    assert result["error"] == "invalid_grant"
    assert result["suberror"] == "consent_required"
    assert result["error_codes"] == [65001]


def test_a_fault_for_another_user_leaves_alice_alone(entra: EntraStandIn) -> None:
    entra.add_fault("interaction_required", grant="on_behalf_of", user="bob@contoso.test")
    assert "access_token" in obo(entra, user_token(entra))


def test_the_agent_cannot_use_obo_without_consent_for_arm(entra: EntraStandIn) -> None:
    agent = confidential_app(entra.authority, SRE_AGENT_CLIENT_ID, secret(entra, SRE_AGENT_CLIENT_ID))
    assertion = entra.issue_token(SRE_GATES_USER_IMPERSONATION, client_id=SRE_GATES_CLIENT_ID, user=ALICE,
                                  claims={"aud": SRE_AGENT_CLIENT_ID})
    assert agent.acquire_token_on_behalf_of(assertion, [ARM_SCOPE_DEFAULT])["suberror"] == "consent_required"


def test_faults_are_added_listed_and_cleared_over_the_control_endpoint(entra: EntraStandIn) -> None:
    url = f"{entra.base_url}/_standin/faults"
    added = requests.post(url, json={"grant": "on_behalf_of", "user": ALICE, "error": "consent_required",
                                     "count": 2}, timeout=10)
    assert added.status_code == 201
    assert [f["error"] for f in requests.get(url, timeout=10).json()["faults"]] == ["consent_required"]
    assert requests.delete(url, timeout=10).status_code == 204
    assert requests.get(url, timeout=10).json()["faults"] == []


def test_the_control_endpoint_refuses_an_unknown_fault(entra: EntraStandIn) -> None:
    response = requests.post(f"{entra.base_url}/_standin/faults", json={"error": "explode"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_a_fixture_flag_requires_mfa_until_the_assertion_shows_mfa(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    document = json.loads(DEFAULT_FIXTURE.read_text())
    document["users"][0]["flags"] = {"mfa_required_for": [ARM]}
    fixture = tmp_path / "entra.json"
    fixture.write_text(json.dumps(document))
    with EntraStandIn(fixture, state_dir=tmp_path / "state") as strict:
        for name, value in strict.certificate_authority.client_environment().items():
            monkeypatch.setenv(name, value)
        password_only = strict.issue_token(SRE_GATES_USER_IMPERSONATION, client_id=SRE_GATES_CLIENT_ID, user=ALICE)
        with_mfa = strict.issue_token(SRE_GATES_USER_IMPERSONATION, client_id=SRE_GATES_CLIENT_ID, user=ALICE,
                                      claims={"amr": ["pwd", "mfa"]})
        refused = obo(strict, password_only)
        granted = obo(strict, with_mfa)
    assert refused["error"] == "interaction_required"
    assert refused["claims"]
    assert "access_token" in granted


def test_the_apps_own_token_broker_gets_a_one_shot_arm_credential(entra: EntraStandIn) -> None:
    from shared.adapters.identity import MsalTokenBroker

    broker = MsalTokenBroker(authority_host=entra.base_url, tenant_id=entra.tenant_id,
                             client_id=SRE_GATES_CLIENT_ID, client_secret=secret(entra), agent=None)  # type: ignore[arg-type]
    credential = broker.on_behalf_of(user_token(entra))
    token = credential.get_token("https://management.azure.com/.default")
    assert claims_of(token.token)["oid"] == ALICE


def test_a_fixture_flag_withholds_a_users_consent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    document = json.loads(DEFAULT_FIXTURE.read_text())
    document["users"][1]["flags"] = {"consent_missing_for": [ARM]}
    fixture = tmp_path / "entra.json"
    fixture.write_text(json.dumps(document))
    with EntraStandIn(fixture, state_dir=tmp_path / "state") as strict:
        for name, value in strict.certificate_authority.client_environment().items():
            monkeypatch.setenv(name, value)
        bob = strict.issue_token(SRE_GATES_USER_IMPERSONATION, client_id=SRE_GATES_CLIENT_ID, user="bob@contoso.test")
        alice = strict.issue_token(SRE_GATES_USER_IMPERSONATION, client_id=SRE_GATES_CLIENT_ID, user=ALICE)
        refused, granted = obo(strict, bob), obo(strict, alice)
    assert refused["suberror"] == "consent_required"
    assert "access_token" in granted
