"""The sign-in page and the authorization-code flow, as App Service Authentication and MSAL use them."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import jwt
import msal
import pytest
import requests

from local_azure.entra import SRE_GATES_CLIENT_ID, SRE_GATES_USER_IMPERSONATION, EntraStandIn
from local_azure.entra.testing import confidential_app

ALICE = "a11ce000-0000-4000-8000-000000000001"
PASSWORD = "Passw0rd!"


@pytest.fixture(scope="module")
def entra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EntraStandIn]:
    with EntraStandIn(state_dir=tmp_path_factory.mktemp("entra")) as stand_in:
        yield stand_in


@pytest.fixture(autouse=True)
def trust_local_ca(entra: EntraStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in entra.certificate_authority.client_environment().items():
        monkeypatch.setenv(name, value)


class _Callback(BaseHTTPRequestHandler):
    received: list[dict[str, list[str]]]

    def do_GET(self) -> None:
        self.received.append(parse_qs(urlsplit(self.path).query))
        body = b"signed in"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def callback() -> Iterator[tuple[str, list[dict[str, list[str]]]]]:
    """A stand-in for the Functions host's `/.auth/login/aad/callback`, on a free loopback port."""
    received: list[dict[str, list[str]]] = []
    handler = type("Callback", (_Callback,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.auth/login/aad/callback", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.inputs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = values.get("action", "")
        if tag == "input":
            self.inputs.append(values.get("name", ""))
            if values.get("type") == "hidden":
                self.fields[values.get("name", "")] = values.get("value", "")


def read_form(page: requests.Response) -> _Form:
    form = _Form()
    form.feed(page.text)
    return form


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(entra: EntraStandIn, redirect_uri: str, **extra: str) -> str:
    parameters = {"client_id": SRE_GATES_CLIENT_ID, "response_type": "code", "redirect_uri": redirect_uri,
                  "scope": f"openid profile email {SRE_GATES_USER_IMPERSONATION}", "state": "s-123",
                  "nonce": "n-456", "response_mode": "query", **extra}
    return f"{entra.authority}/oauth2/v2.0/authorize?{urlencode(parameters)}"


def sign_in(session: requests.Session, url: str, username: str = "alice@contoso.test",
            password: str | None = None, follow: bool = True) -> requests.Response:
    password = PASSWORD if password is None else password
    page = session.get(url, timeout=10)
    form = read_form(page)
    return session.post(urljoin(url, form.action), data={**form.fields, "username": username, "password": password},
                        allow_redirects=follow, timeout=10)


def redeem(entra: EntraStandIn, code: str, redirect_uri: str, verifier: str | None) -> requests.Response:
    app = entra.directory.app(SRE_GATES_CLIENT_ID)
    assert app is not None
    form = {"grant_type": "authorization_code", "client_id": SRE_GATES_CLIENT_ID,
            "client_secret": app.client_secrets[0], "code": code, "redirect_uri": redirect_uri,
            "scope": f"openid profile email {SRE_GATES_USER_IMPERSONATION}"}
    if verifier is not None:
        form["code_verifier"] = verifier
    return requests.post(entra.token_endpoint, data=form, timeout=10)


def test_signing_in_redirects_to_the_callback_with_code_and_state(entra: EntraStandIn, callback: Any) -> None:
    redirect_uri, received = callback
    landed = sign_in(requests.Session(), authorize_url(entra, redirect_uri))
    assert landed.status_code == 200
    assert received[0]["state"] == ["s-123"]
    assert received[0]["code"][0]


def test_the_code_redeems_for_tokens_with_pkce(entra: EntraStandIn, callback: Any) -> None:
    redirect_uri, received = callback
    verifier, challenge = pkce()
    sign_in(requests.Session(), authorize_url(entra, redirect_uri, code_challenge=challenge,
                                              code_challenge_method="S256"))
    tokens = redeem(entra, received[0]["code"][0], redirect_uri, verifier).json()
    key = jwt.PyJWKClient(entra.jwks_uri).get_signing_key_from_jwt(tokens["id_token"]).key
    identity = jwt.decode(tokens["id_token"], key, algorithms=["RS256"], audience=SRE_GATES_CLIENT_ID,
                          issuer=entra.issuer)
    assert identity["nonce"] == "n-456"
    assert identity["oid"] == ALICE
    assert identity["roles"] == ["Gates.Approver"]
    assert jwt.decode(tokens["access_token"], key, algorithms=["RS256"], audience=SRE_GATES_CLIENT_ID,
                      issuer=entra.issuer)["scp"] == "user_impersonation"


def test_any_loopback_port_is_a_registered_redirect(entra: EntraStandIn) -> None:
    for uri in ("http://127.0.0.1:7071/.auth/login/aad/callback", "http://localhost:50123/.auth/login/aad/callback"):
        landed = sign_in(requests.Session(), authorize_url(entra, uri), follow=False)
        assert landed.status_code == 302
        assert landed.headers["Location"].startswith(uri + "?")


def test_an_unregistered_redirect_is_refused_on_a_page_not_followed(entra: EntraStandIn) -> None:
    page = requests.get(authorize_url(entra, "https://evil.example/.auth/login/aad/callback"), timeout=10,
                        allow_redirects=False)
    assert page.status_code == 400
    assert "AADSTS50011" in page.text


def test_a_wrong_password_shows_the_form_again(entra: EntraStandIn, callback: Any) -> None:
    redirect_uri, received = callback
    again = sign_in(requests.Session(), authorize_url(entra, redirect_uri), password="guess")
    assert again.status_code == 200
    assert "incorrect" in again.text
    assert "password" in read_form(again).inputs
    assert received == []


def test_a_code_redeems_only_once(entra: EntraStandIn, callback: Any) -> None:
    redirect_uri, received = callback
    sign_in(requests.Session(), authorize_url(entra, redirect_uri))
    code = received[0]["code"][0]
    assert redeem(entra, code, redirect_uri, None).status_code == 200
    second = redeem(entra, code, redirect_uri, None)
    assert second.json()["error_codes"] == [54005]


def test_a_wrong_code_verifier_is_refused(entra: EntraStandIn, callback: Any) -> None:
    redirect_uri, received = callback
    _, challenge = pkce()
    sign_in(requests.Session(), authorize_url(entra, redirect_uri, code_challenge=challenge,
                                              code_challenge_method="S256"))
    refused = redeem(entra, received[0]["code"][0], redirect_uri, "another-verifier-another-verifier-1234567890")
    assert refused.json()["error"] == "invalid_grant"
    assert refused.json()["error_codes"] == [501481]


def test_a_code_redeems_only_at_the_same_redirect_uri(entra: EntraStandIn, callback: Any) -> None:
    redirect_uri, received = callback
    sign_in(requests.Session(), authorize_url(entra, redirect_uri))
    refused = redeem(entra, received[0]["code"][0], "http://localhost:1/.auth/login/aad/callback", None)
    assert refused.json()["error"] == "invalid_grant"


def test_silent_sign_in_answers_login_required_to_the_client(entra: EntraStandIn, callback: Any) -> None:
    redirect_uri, _ = callback
    answer = requests.get(authorize_url(entra, redirect_uri, prompt="none"), allow_redirects=False, timeout=10)
    returned = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert returned["error"] == ["login_required"]
    assert returned["state"] == ["s-123"]


def test_an_unsupported_response_type_goes_back_to_the_client(entra: EntraStandIn, callback: Any) -> None:
    redirect_uri, _ = callback
    answer = requests.get(authorize_url(entra, redirect_uri, response_type="token"), allow_redirects=False,
                          timeout=10)
    assert parse_qs(urlsplit(answer.headers["Location"]).query)["error"] == ["unsupported_response_type"]


def test_form_post_response_mode_posts_the_code_back(entra: EntraStandIn, callback: Any) -> None:
    redirect_uri, _ = callback
    page = sign_in(requests.Session(), authorize_url(entra, redirect_uri, response_mode="form_post"), follow=False)
    form = read_form(page)
    assert form.action == redirect_uri
    assert form.fields["code"]
    assert form.fields["state"] == "s-123"


def test_the_sign_in_page_is_plain_and_readable_on_a_phone(entra: EntraStandIn, callback: Any) -> None:
    redirect_uri, _ = callback
    page = requests.get(authorize_url(entra, redirect_uri, login_hint="alice@contoso.test"), timeout=10)
    assert 'name="viewport"' in page.text
    assert '<label for="username">' in page.text
    assert 'value="alice@contoso.test"' in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"].startswith("no-store")


def test_an_expired_or_unknown_sign_in_flow_is_refused(entra: EntraStandIn) -> None:
    page = requests.post(f"{entra.authority}/oauth2/v2.0/authorize",
                         data={"flow": "nope", "username": "alice@contoso.test", "password": "Passw0rd!"}, timeout=10)
    assert page.status_code == 400
    assert "AADSTS50089" in page.text


def test_msal_auth_code_flow_signs_alice_in(entra: EntraStandIn, callback: Any) -> None:
    redirect_uri, _ = callback
    app = entra.directory.app(SRE_GATES_CLIENT_ID)
    assert app is not None
    client: msal.ConfidentialClientApplication = confidential_app(entra.authority, SRE_GATES_CLIENT_ID,
                                                                  app.client_secrets[0])
    flow = client.initiate_auth_code_flow([SRE_GATES_USER_IMPERSONATION], redirect_uri=redirect_uri,
                                          response_mode="form_post")
    auth_response = read_form(sign_in(requests.Session(), flow["auth_uri"], follow=False)).fields
    result = client.acquire_token_by_auth_code_flow(flow, auth_response)
    assert result["id_token_claims"]["oid"] == ALICE
    assert jwt.decode(result["access_token"], options={"verify_signature": False})["aud"] == SRE_GATES_CLIENT_ID
