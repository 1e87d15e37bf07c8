"""Bad requests get the OAuth error JSON Entra gives: the right `error`, an AADSTS code, never a traceback."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local_azure.entra import ARM_SCOPE_DEFAULT, SRE_AGENT_CLIENT_ID, SRE_GATES_CLIENT_ID, EntraStandIn

ENTRA_ERROR_FIELDS = {"error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id"}


@pytest.fixture(scope="module")
def entra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EntraStandIn]:
    with EntraStandIn(state_dir=tmp_path_factory.mktemp("entra")) as stand_in:
        yield stand_in


@pytest.fixture(autouse=True)
def trust_local_ca(entra: EntraStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in entra.certificate_authority.client_environment().items():
        monkeypatch.setenv(name, value)


def agent_secret(entra: EntraStandIn) -> str:
    app = entra.directory.app(SRE_AGENT_CLIENT_ID)
    assert app is not None
    return app.client_secrets[0]


def token(entra: EntraStandIn, **form: str) -> requests.Response:
    return requests.post(entra.token_endpoint, data=form, timeout=10)


def agent_form(entra: EntraStandIn, **extra: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": SRE_AGENT_CLIENT_ID,
            "client_secret": agent_secret(entra), "scope": ARM_SCOPE_DEFAULT, **extra}


def test_a_bad_client_secret_is_invalid_client_401_in_entras_shape(entra: EntraStandIn) -> None:
    response = token(entra, **agent_form(entra, client_secret="wrong"))
    body = response.json()
    assert response.status_code == 401
    assert body.keys() >= ENTRA_ERROR_FIELDS
    assert body["error"] == "invalid_client"
    assert body["error_description"].startswith("AADSTS7000215: ")
    assert body["error_codes"] == [7000215]


def test_a_missing_client_secret_is_invalid_client(entra: EntraStandIn) -> None:
    form = agent_form(entra)
    del form["client_secret"]
    assert token(entra, **form).json()["error_codes"] == [7000218]


def test_an_unknown_client_is_unauthorized_client(entra: EntraStandIn) -> None:
    body = token(entra, **agent_form(entra, client_id="00000000-0000-0000-0000-000000000bad")).json()
    assert (body["error"], body["error_codes"]) == ("unauthorized_client", [700016])


def test_an_unsupported_grant_type_is_named(entra: EntraStandIn) -> None:
    response = token(entra, **agent_form(entra, grant_type="urn:ietf:params:oauth:grant-type:device_code_x"))
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_a_missing_grant_type_is_invalid_request(entra: EntraStandIn) -> None:
    body = token(entra, client_id=SRE_AGENT_CLIENT_ID).json()
    assert (body["error"], body["error_codes"]) == ("invalid_request", [900144])
    assert "'grant_type'" in body["error_description"]


def test_a_missing_assertion_is_invalid_request(entra: EntraStandIn) -> None:
    app = entra.directory.app(SRE_GATES_CLIENT_ID)
    assert app is not None
    body = token(entra, grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer", client_id=SRE_GATES_CLIENT_ID,
                 client_secret=app.client_secrets[0], requested_token_use="on_behalf_of",
                 scope="https://management.azure.com/user_impersonation").json()
    assert body["error"] == "invalid_request"
    assert "'assertion'" in body["error_description"]


def test_a_wrong_password_is_invalid_grant(entra: EntraStandIn) -> None:
    app = entra.directory.app(SRE_GATES_CLIENT_ID)
    assert app is not None
    body = token(entra, grant_type="password", client_id=SRE_GATES_CLIENT_ID, client_secret=app.client_secrets[0],
                 username="alice@contoso.test", password="guess", scope="api://sre-gates/user_impersonation").json()
    assert (body["error"], body["error_codes"]) == ("invalid_grant", [50126])


def test_client_credentials_need_a_default_scope(entra: EntraStandIn) -> None:
    body = token(entra, **agent_form(entra, scope="https://management.azure.com/user_impersonation")).json()
    assert (body["error"], body["error_codes"]) == ("invalid_scope", [1002012])


def test_an_unknown_resource_is_invalid_resource(entra: EntraStandIn) -> None:
    body = token(entra, **agent_form(entra, scope="https://vault.example/.default")).json()
    assert (body["error"], body["error_codes"]) == ("invalid_resource", [500011])


def test_two_resources_in_one_request_are_invalid_scope(entra: EntraStandIn) -> None:
    app = entra.directory.app(SRE_GATES_CLIENT_ID)
    assert app is not None
    body = token(entra, grant_type="password", client_id=SRE_GATES_CLIENT_ID, client_secret=app.client_secrets[0],
                 username="alice@contoso.test", password="Passw0rd!",
                 scope="api://sre-gates/user_impersonation https://management.azure.com/user_impersonation").json()
    assert body["error"] == "invalid_scope"


def test_an_unknown_tenant_is_named(entra: EntraStandIn) -> None:
    response = requests.post(f"{entra.base_url}/not-a-tenant/oauth2/v2.0/token", data=agent_form(entra), timeout=10)
    assert response.status_code == 400
    assert response.json()["error_codes"] == [90002]


def test_the_token_endpoint_only_takes_post(entra: EntraStandIn) -> None:
    body = requests.get(entra.token_endpoint, timeout=10).json()
    assert (body["error"], body["error_codes"]) == ("invalid_request", [900561])


def test_a_json_body_is_not_a_form(entra: EntraStandIn) -> None:
    response = requests.post(entra.token_endpoint, json=agent_form(entra), timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_the_correlation_id_a_client_sends_comes_back(entra: EntraStandIn) -> None:
    response = requests.post(entra.token_endpoint, data={}, headers={"client-request-id": "c0ffee"}, timeout=10)
    assert response.json()["correlation_id"] == "c0ffee"


def test_a_refresh_token_for_another_client_is_refused(entra: EntraStandIn) -> None:
    body = token(entra, **agent_form(entra, grant_type="refresh_token", refresh_token="0.local.forged")).json()
    assert body["error"] == "invalid_grant"


def test_an_oversized_body_gets_oauth_json(entra: EntraStandIn) -> None:
    response = requests.post(entra.token_endpoint, data=b"a" * (2 << 20),
                             headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert response.status_code == 413
    assert response.json()["error"] == "invalid_request"


def test_bytes_that_are_not_utf8_get_oauth_json(entra: EntraStandIn) -> None:
    response = requests.post(entra.token_endpoint, data=b"\xff\xfe\x00grant_type=\xc3",
                             headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_plain_http_on_the_https_port_does_not_hang_the_server(entra: EntraStandIn) -> None:
    with socket.create_connection(("127.0.0.1", entra.port), timeout=5) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        plain.settimeout(5)
        with contextlib.suppress(TimeoutError, ConnectionError):
            plain.recv(100)
    assert requests.get(entra.jwks_uri, timeout=10).status_code == 200


def test_a_garbage_request_line_gets_an_http_error_not_a_hang(entra: EntraStandIn) -> None:
    context = ssl.create_default_context(cafile=str(entra.certificate_authority.ca_cert_path))
    with socket.create_connection(("127.0.0.1", entra.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"\x00\x01garbage\r\n\r\n")
        assert tls.recv(12).startswith(b"HTTP/1.1 400")


FORM_NAMES = st.sampled_from(["grant_type", "client_id", "client_secret", "scope", "assertion", "username",
                              "password", "code", "redirect_uri", "refresh_token", "requested_token_use",
                              "code_verifier", "client_assertion", "claims", "client_info"])
FORM_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["client_credentials", "password", "authorization_code", "refresh_token",
                     "urn:ietf:params:oauth:grant-type:jwt-bearer", "on_behalf_of", SRE_GATES_CLIENT_ID,
                     SRE_AGENT_CLIENT_ID, ARM_SCOPE_DEFAULT, "openid", "alice@contoso.test", "a.b.c", "/.default"]),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=st.dictionaries(FORM_NAMES, FORM_VALUES, max_size=8))
def test_any_form_gets_a_token_or_an_oauth_error(entra: EntraStandIn, form: dict[str, str]) -> None:
    response = requests.post(entra.token_endpoint, data=form, timeout=10)
    body = response.json()
    if response.status_code == 200:
        assert "access_token" in body
    else:
        assert response.status_code in (400, 401)
        assert body.keys() >= ENTRA_ERROR_FIELDS
        assert body["error_description"].startswith("AADSTS")
