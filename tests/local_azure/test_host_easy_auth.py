"""App Service Authentication in front of the HTTP functions, against a small OIDC provider of the tests' own."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from local_azure.host import FunctionsHost
from local_azure.host.signin import SignInFailed, sign_in
from tests.local_azure.sample_app.harness import running_host
from tests.local_azure.sample_app.tiny_oidc import API_AUDIENCE, CLIENT_ID, CLIENT_SECRET, USERS, TinyOidcProvider

pytestmark = pytest.mark.timeout(60)
TIMEOUT = 10
ALICE = "alice@contoso.test"
BROWSER = {"Accept": "text/html,application/xhtml+xml"}

AUTH_SETTINGS = {
    "platform": {"enabled": True},
    "globalValidation": {"requireAuthentication": True, "unauthenticatedClientAction": "RedirectToLoginPage",
                         "excludedPaths": ["/api/setting"]},
    "identityProviders": {"azureActiveDirectory": {
        "enabled": True,
        "registration": {"openIdIssuer": "${SAMPLE_ISSUER}", "clientId": "${SAMPLE_CLIENT_ID}",
                         "clientSecretSettingName": "SAMPLE_CLIENT_SECRET"},
        "login": {"loginParameters": [f"scope=openid profile email offline_access {API_AUDIENCE}/user_impersonation"]},
        "validation": {"allowedAudiences": [API_AUDIENCE]},
    }},
    "login": {"tokenStore": {"enabled": True}},
}


@pytest.fixture(scope="module")
def provider() -> Iterator[TinyOidcProvider]:
    started = TinyOidcProvider().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def host(provider: TinyOidcProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FunctionsHost]:
    auth_settings = tmp_path_factory.mktemp("auth") / "authsettings.json"
    auth_settings.write_text(json.dumps({"properties": AUTH_SETTINGS}))
    settings = {"SAMPLE_SERVICEBUS": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v",
                "SAMPLE_ISSUER": provider.issuer, "SAMPLE_CLIENT_ID": CLIENT_ID,
                "SAMPLE_CLIENT_SECRET": CLIENT_SECRET}
    with running_host(settings, auth_settings=auth_settings) as running:
        yield running


@pytest.fixture(scope="module")
def alice(host: FunctionsHost) -> requests.Session:
    return sign_in(host.base_url, ALICE, "Passw0rd!")


def principal_of(seen: dict[str, str]) -> dict[str, object]:
    return json.loads(base64.b64decode(seen["x-ms-client-principal"]))


def claims_of(seen: dict[str, str]) -> dict[str, list[str]]:
    claims: dict[str, list[str]] = {}
    for claim in principal_of(seen)["claims"]:  # type: ignore[union-attr]
        claims.setdefault(claim["typ"], []).append(claim["val"])
    return claims


def test_a_browser_without_a_session_is_sent_to_the_login_page(host: FunctionsHost) -> None:
    response = requests.get(f"{host.base_url}/api/whoami?x=1", headers=BROWSER, timeout=TIMEOUT,
                            allow_redirects=False)

    assert response.status_code == 302
    assert response.headers["Location"] == "/.auth/login/aad?post_login_redirect_uri=%2Fapi%2Fwhoami%3Fx%3D1"


def test_an_api_call_without_credentials_is_401(host: FunctionsHost) -> None:
    response = requests.get(f"{host.base_url}/api/whoami", headers={"Accept": "application/json"}, timeout=TIMEOUT)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_a_post_without_credentials_is_401_even_from_a_browser(host: FunctionsHost) -> None:
    assert requests.post(f"{host.base_url}/api/whoami", headers=BROWSER, timeout=TIMEOUT).status_code == 401


def test_an_xhr_without_credentials_is_401(host: FunctionsHost) -> None:
    headers = {**BROWSER, "X-Requested-With": "XMLHttpRequest"}

    assert requests.get(f"{host.base_url}/api/whoami", headers=headers, timeout=TIMEOUT).status_code == 401


def test_an_excluded_path_is_open_without_sign_in(host: FunctionsHost) -> None:
    assert requests.get(f"{host.base_url}/api/setting", timeout=TIMEOUT).status_code == 200


def test_signing_in_gives_the_function_easy_auths_principal_headers(host: FunctionsHost,
                                                                    alice: requests.Session) -> None:
    seen = alice.get(f"{host.base_url}/api/whoami", timeout=TIMEOUT).json()

    assert seen["x-ms-client-principal-id"] == USERS[ALICE]["oid"]
    assert seen["x-ms-client-principal-name"] == ALICE
    assert seen["x-ms-client-principal-idp"] == "aad"
    assert principal_of(seen)["auth_typ"] == "aad"
    assert principal_of(seen)["role_typ"] == "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
    assert claims_of(seen)["roles"] == ["Gates.Approver"]
    assert claims_of(seen)["http://schemas.microsoft.com/identity/claims/objectidentifier"] == [USERS[ALICE]["oid"]]


def test_the_token_store_passes_the_users_tokens(host: FunctionsHost, alice: requests.Session,
                                                 provider: TinyOidcProvider) -> None:
    import jwt
    seen = alice.get(f"{host.base_url}/api/whoami", timeout=TIMEOUT).json()

    access = jwt.decode(seen["x-ms-token-aad-access-token"], options={"verify_signature": False})
    assert access["aud"] == API_AUDIENCE
    assert jwt.decode(seen["x-ms-token-aad-id-token"], options={"verify_signature": False})["aud"] == CLIENT_ID
    assert seen["x-ms-token-aad-expires-on"].endswith("Z")


def test_the_session_cookie_is_httponly_and_samesite_lax(host: FunctionsHost, provider: TinyOidcProvider) -> None:
    session = sign_in(host.base_url, ALICE, "Passw0rd!")
    [cookie] = [cookie for cookie in session.cookies if cookie.name == "AppServiceAuthSession"]

    assert cookie.has_nonstandard_attr("HttpOnly")
    assert cookie.get_nonstandard_attr("SameSite") == "Lax"
    assert not cookie.secure  # plain http here; Secure whenever the host is reached over https


def test_a_forged_principal_header_never_reaches_a_function_even_when_signed_in(host: FunctionsHost,
                                                                                alice: requests.Session) -> None:
    seen = alice.get(f"{host.base_url}/api/whoami", timeout=TIMEOUT,
                     headers={"X-MS-CLIENT-PRINCIPAL-NAME": "mallory@contoso.test",
                              "X-MS-CLIENT-PRINCIPAL-ID": "forged"}).json()

    assert seen["x-ms-client-principal-name"] == ALICE
    assert seen["x-ms-client-principal-id"] == USERS[ALICE]["oid"]


def test_a_forged_principal_header_alone_does_not_authenticate(host: FunctionsHost) -> None:
    forged = base64.b64encode(json.dumps({"auth_typ": "aad", "claims": []}).encode()).decode()

    response = requests.get(f"{host.base_url}/api/whoami", timeout=TIMEOUT,
                            headers={"X-MS-CLIENT-PRINCIPAL": forged, "X-MS-CLIENT-PRINCIPAL-ID": "x"})

    assert response.status_code == 401


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example"])
def test_an_off_site_post_login_redirect_is_ignored(host: FunctionsHost, target: str) -> None:
    session = requests.Session()
    first = session.get(f"{host.base_url}/.auth/login/aad", params={"post_login_redirect_uri": target},
                        timeout=TIMEOUT)
    form = {field: value for field, value in _hidden_fields(first.text)}
    back = session.post(first.url.split("?")[0], data={**form, "login": ALICE, "passwd": "Passw0rd!"},
                        timeout=TIMEOUT, allow_redirects=False)
    callback = session.get(back.headers["Location"], timeout=TIMEOUT, allow_redirects=False)

    assert callback.status_code == 302
    assert callback.headers["Location"] == "/.auth/login/done"


def test_a_same_origin_post_login_redirect_is_honoured(host: FunctionsHost) -> None:
    session = requests.Session()
    first = session.get(f"{host.base_url}/.auth/login/aad", params={"post_login_redirect_uri": "/api/whoami?a=1"},
                        timeout=TIMEOUT)
    form = dict(_hidden_fields(first.text))
    back = session.post(first.url.split("?")[0], data={**form, "login": ALICE, "passwd": "Passw0rd!"},
                        timeout=TIMEOUT, allow_redirects=False)
    callback = session.get(back.headers["Location"], timeout=TIMEOUT, allow_redirects=False)

    assert callback.headers["Location"] == "/api/whoami?a=1"


def test_the_login_passes_prompt_and_login_hint_on_to_the_identity_provider(host: FunctionsHost) -> None:
    response = requests.get(f"{host.base_url}/.auth/login/aad", timeout=TIMEOUT, allow_redirects=False,
                            params={"prompt": "select_account", "login_hint": "bob@contoso.test", "other": "x"})

    query = urllib.parse.parse_qs(urllib.parse.urlsplit(response.headers["Location"]).query)
    assert query["prompt"] == ["select_account"]
    assert query["login_hint"] == ["bob@contoso.test"]
    assert "other" not in query


def _hidden_fields(page: str) -> list[tuple[str, str]]:
    import re
    return re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.replace("&amp;", "&"))


def test_a_callback_with_an_unknown_state_is_refused(host: FunctionsHost) -> None:
    response = requests.get(f"{host.base_url}/.auth/login/aad/callback", params={"code": "x", "state": "forged"},
                            timeout=TIMEOUT)

    assert response.status_code == 401


def test_a_wrong_password_does_not_sign_in(host: FunctionsHost) -> None:
    with pytest.raises(SignInFailed):
        sign_in(host.base_url, ALICE, "wrong")


def test_auth_me_lists_the_signed_in_users_claims(host: FunctionsHost, alice: requests.Session) -> None:
    [me] = alice.get(f"{host.base_url}/.auth/me", timeout=TIMEOUT).json()

    assert me["provider_name"] == "aad"
    assert me["user_id"] == ALICE
    assert {"typ": "roles", "val": "Gates.Approver"} in me["user_claims"]


def test_auth_me_without_a_session_is_401(host: FunctionsHost) -> None:
    assert requests.get(f"{host.base_url}/.auth/me", timeout=TIMEOUT).status_code == 401


def test_logout_ends_the_session(host: FunctionsHost) -> None:
    session = sign_in(host.base_url, ALICE, "Passw0rd!")
    cookie = session.cookies.get("AppServiceAuthSession")

    session.get(f"{host.base_url}/.auth/logout", timeout=TIMEOUT)
    replayed = requests.get(f"{host.base_url}/api/whoami", cookies={"AppServiceAuthSession": cookie or ""},
                            timeout=TIMEOUT)

    assert replayed.status_code == 401


def test_a_bearer_token_for_an_allowed_audience_is_accepted(host: FunctionsHost, provider: TinyOidcProvider) -> None:
    token = provider.mint(API_AUDIENCE)

    seen = requests.get(f"{host.base_url}/api/whoami", headers={"Authorization": f"Bearer {token}"},
                        timeout=TIMEOUT).json()

    assert seen["x-ms-client-principal-id"] == USERS[ALICE]["oid"]
    assert seen["authorization"] == f"Bearer {token}"
    assert "x-ms-token-aad-access-token" not in seen


def test_the_client_id_is_always_an_allowed_audience(host: FunctionsHost, provider: TinyOidcProvider) -> None:
    response = requests.get(f"{host.base_url}/api/whoami", timeout=TIMEOUT,
                            headers={"Authorization": f"Bearer {provider.mint(CLIENT_ID)}"})

    assert response.status_code == 200


def test_an_expired_bearer_token_is_refused(host: FunctionsHost, provider: TinyOidcProvider) -> None:
    response = requests.get(f"{host.base_url}/api/whoami", timeout=TIMEOUT,
                            headers={"Authorization": f"Bearer {provider.mint(lifetime=-3600)}"})

    assert response.status_code == 401
    assert "expired" in response.headers["WWW-Authenticate"]


def test_a_bearer_token_for_another_audience_is_refused(host: FunctionsHost, provider: TinyOidcProvider) -> None:
    response = requests.get(f"{host.base_url}/api/whoami", timeout=TIMEOUT,
                            headers={"Authorization": f"Bearer {provider.mint('api://someone-else')}"})

    assert response.status_code == 401
    assert "audience" in response.headers["WWW-Authenticate"]


def test_a_bearer_token_signed_by_another_key_is_refused(host: FunctionsHost, provider: TinyOidcProvider) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    response = requests.get(f"{host.base_url}/api/whoami", timeout=TIMEOUT,
                            headers={"Authorization": f"Bearer {provider.mint(key=stranger)}"})

    assert response.status_code == 401


def test_a_bearer_token_from_another_issuer_is_refused(host: FunctionsHost, provider: TinyOidcProvider) -> None:
    response = requests.get(f"{host.base_url}/api/whoami", timeout=TIMEOUT,
                            headers={"Authorization": f"Bearer {provider.mint(iss='https://evil.example/v2.0')}"})

    assert response.status_code == 401


def test_garbage_in_the_authorization_header_is_401(host: FunctionsHost) -> None:
    response = requests.get(f"{host.base_url}/api/whoami", headers={"Authorization": "Bearer not.a.jwt"},
                            timeout=TIMEOUT)

    assert response.status_code == 401


def test_the_shipped_authsettings_file_reads(tmp_path: Path) -> None:
    from local_azure.host.auth_settings import AuthSettings
    shipped = Path(__file__).parents[2] / "local_azure" / "config" / "authsettings.json"
    values = {"GATES_AUTHORITY_HOST": "https://127.0.0.1:8443", "GATES_TENANT_ID": "tenant",
              "GATES_CLIENT_ID": CLIENT_ID, "MICROSOFT_PROVIDER_AUTHENTICATION_SECRET": "secret"}

    settings = AuthSettings.load(shipped, values.get)

    assert settings.enabled
    assert settings.issuer == "https://127.0.0.1:8443/tenant/v2.0"
    assert settings.client_secret == "secret"
    assert settings.is_excluded("/api/alerts")  # the alert webhook carries a function key, not a user
    assert not settings.is_excluded("/api/runs")
