"""The host's App Service Authentication against the Entra ID stand-in, with the app's own authsettings.json.

This is the sign-in the project's approval pages get: `sign_in` walks the stand-in's form, and the
function sees the principal headers Easy Auth writes for the fixture identities.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from local_azure.entra import SRE_GATES_CLIENT_ID, SRE_GATES_USER_IMPERSONATION, EntraStandIn
from local_azure.host import FunctionsHost
from local_azure.host.signin import SignInFailed, sign_in
from tests.local_azure.sample_app.harness import running_host

pytestmark = pytest.mark.timeout(60)
TIMEOUT = 10
SHIPPED_AUTH_SETTINGS = Path(__file__).parents[2] / "local_azure" / "config" / "authsettings.json"
SRE_GATES_SECRET = "local-only-sre-gates-secret-not-for-azure"  # the fixture's, local only
PASSWORD = "Passw0rd!"
ALICE_OID = "a11ce000-0000-4000-8000-000000000001"
MALLORY_OID = "3a110000-0000-4000-8000-000000000003"
ROLE_TYPE = "roles"


@pytest.fixture(scope="module")
def entra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EntraStandIn]:
    with EntraStandIn(state_dir=tmp_path_factory.mktemp("entra")) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def host(entra: EntraStandIn) -> Iterator[FunctionsHost]:
    trust = str(entra.certificate_authority.trust_bundle_path)
    settings = {
        "SAMPLE_SERVICEBUS": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v",
        "GATES_AUTHORITY_HOST": entra.base_url,
        "GATES_TENANT_ID": entra.tenant_id,
        "GATES_CLIENT_ID": SRE_GATES_CLIENT_ID,
        "MICROSOFT_PROVIDER_AUTHENTICATION_SECRET": SRE_GATES_SECRET,
        # How every part of the local stack trusts the stand-ins' CA: requests reads it from the environment.
        "REQUESTS_CA_BUNDLE": trust,
        "SSL_CERT_FILE": trust,
    }
    with running_host(settings, auth_settings=SHIPPED_AUTH_SETTINGS) as running:
        yield running


def whoami(session: requests.Session | None, host: FunctionsHost, **headers: str) -> dict[str, str]:
    getter = session.get if session is not None else requests.get
    response = getter(f"{host.base_url}/api/whoami", headers=headers, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return dict(response.json())


def claims(seen: dict[str, str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for claim in json.loads(base64.b64decode(seen["x-ms-client-principal"]))["claims"]:
        found.setdefault(claim["typ"], []).append(claim["val"])
    return found


def test_signing_in_through_entra_gives_the_function_alices_principal(host: FunctionsHost) -> None:
    seen = whoami(sign_in(host.base_url, "alice@contoso.test", PASSWORD), host)

    assert seen["x-ms-client-principal-id"] == ALICE_OID
    assert seen["x-ms-client-principal-name"] == "alice@contoso.test"
    assert seen["x-ms-client-principal-idp"] == "aad"
    assert claims(seen)[ROLE_TYPE] == ["Gates.Approver"]


def test_the_token_store_holds_an_access_token_for_the_app_that_obo_can_use(host: FunctionsHost) -> None:
    import jwt
    seen = whoami(sign_in(host.base_url, "alice@contoso.test", PASSWORD), host)

    access = jwt.decode(seen["x-ms-token-aad-access-token"], options={"verify_signature": False})

    assert "user_impersonation" in access["scp"].split()
    assert access["oid"] == ALICE_OID


def test_a_user_without_app_roles_signs_in_with_none(host: FunctionsHost) -> None:
    seen = whoami(sign_in(host.base_url, "mallory@contoso.test", PASSWORD), host)

    assert seen["x-ms-client-principal-id"] == MALLORY_OID
    assert ROLE_TYPE not in claims(seen)


def test_a_wrong_password_at_entra_does_not_sign_in(host: FunctionsHost) -> None:
    with pytest.raises(SignInFailed):
        sign_in(host.base_url, "alice@contoso.test", "not-the-password")


def test_a_forged_principal_never_reaches_the_function_of_a_signed_in_user(host: FunctionsHost) -> None:
    session = sign_in(host.base_url, "mallory@contoso.test", PASSWORD)
    forged = base64.b64encode(json.dumps({"auth_typ": "aad", "claims": [
        {"typ": "roles", "val": "Gates.Approver"}]}).encode()).decode()

    seen = whoami(session, host, **{"X-MS-CLIENT-PRINCIPAL": forged, "X-MS-CLIENT-PRINCIPAL-ID": ALICE_OID})

    assert seen["x-ms-client-principal-id"] == MALLORY_OID
    assert ROLE_TYPE not in claims(seen)


def test_an_entra_access_token_for_the_app_is_accepted_as_bearer(host: FunctionsHost, entra: EntraStandIn) -> None:
    token = entra.issue_token(SRE_GATES_USER_IMPERSONATION, client_id=SRE_GATES_CLIENT_ID, user="alice@contoso.test")

    seen = whoami(None, host, Authorization=f"Bearer {token}")

    assert seen["x-ms-client-principal-id"] == ALICE_OID


def test_an_expired_entra_token_is_refused(host: FunctionsHost, entra: EntraStandIn) -> None:
    token = entra.issue_token(SRE_GATES_USER_IMPERSONATION, client_id=SRE_GATES_CLIENT_ID, user="alice@contoso.test",
                              issued_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3),
                              lifetime=dt.timedelta(hours=1))

    response = requests.get(f"{host.base_url}/api/whoami", headers={"Authorization": f"Bearer {token}"},
                            timeout=TIMEOUT)

    assert response.status_code == 401


def test_an_entra_token_for_another_audience_is_refused(host: FunctionsHost, entra: EntraStandIn) -> None:
    arm_token = entra.issue_token("https://management.azure.com/user_impersonation", client_id=SRE_GATES_CLIENT_ID,
                                  user="alice@contoso.test")

    response = requests.get(f"{host.base_url}/api/whoami", headers={"Authorization": f"Bearer {arm_token}"},
                            timeout=TIMEOUT)

    assert response.status_code == 401
    assert "audience" in response.headers["WWW-Authenticate"]
