"""The ARM stand-in as a network service: keys fetched from a JWKS URI, the CLI, and clients that misbehave."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local_azure.arm import ArmStandIn
from local_azure.tls import LocalCertificateAuthority
from tests.local_azure.test_arm import AGENT, AGENT_APP, ALICE, COMPUTE, ISSUER, SUB, VM1, VMSS, Signer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> LocalCertificateAuthority:
    return LocalCertificateAuthority.ensure(tmp_path_factory.mktemp("wire-tls"))


@pytest.fixture(scope="module")
def jwks_uri(signer: Signer, authority: LocalCertificateAuthority) -> Iterator[str]:
    """A bare issuer: serves its JWKS over https with a certificate from the shared local CA."""
    body = json.dumps(signer.jwks()).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    server.socket = authority.issue_server_certificate("issuer").server_context().wrap_socket(
        server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/{SUB}/discovery/v2.0/keys"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def arm(jwks_uri: str, authority: LocalCertificateAuthority,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArmStandIn]:
    with ArmStandIn(state_dir=tmp_path_factory.mktemp("wire-arm"), jwks_uri=jwks_uri, issuers=[ISSUER],
                    certificate_authority=authority) as stand_in:
        yield stand_in


def get(arm: ArmStandIn, token: str, path: str = VM1) -> requests.Response:
    return requests.get(f"{arm.endpoint}{path}", params={"api-version": COMPUTE}, timeout=10,
                        headers={"Authorization": f"Bearer {token}"}, verify=str(arm.authority.trust_bundle_path))


def test_keys_are_fetched_from_the_jwks_uri_over_https(arm: ArmStandIn, signer: Signer) -> None:
    assert get(arm, signer.token(AGENT, appid=AGENT_APP)).status_code == 200


def test_a_token_signed_by_a_key_the_issuer_does_not_publish_is_refused(arm: ArmStandIn) -> None:
    stranger = Signer(kid="someone-else")
    response = get(arm, stranger.token(AGENT, appid=AGENT_APP))
    assert (response.status_code, response.json()["error"]["code"]) == (401, "InvalidAuthenticationToken")


def test_plain_http_on_the_tls_port_does_not_disturb_the_service(arm: ArmStandIn, signer: Signer) -> None:
    with socket.create_connection(("127.0.0.1", arm.port), timeout=5) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        plain.settimeout(5)
        with contextlib.suppress(TimeoutError, ConnectionError):
            plain.recv(1024)
    assert get(arm, signer.token(AGENT, appid=AGENT_APP)).status_code == 200


def test_a_client_that_connects_and_says_nothing_does_not_block_others(arm: ArmStandIn, signer: Signer) -> None:
    with socket.create_connection(("127.0.0.1", arm.port), timeout=5):
        assert get(arm, signer.token(AGENT, appid=AGENT_APP)).status_code == 200


def test_a_bad_content_length_gets_arms_error_json(arm: ArmStandIn) -> None:
    head, body = exchange(arm, f"POST {VM1}/restart?api-version={COMPUTE} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Content-Length: banana\r\n\r\n".encode())
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["error"]["code"] == "InvalidRequestContent"


def exchange(arm: ArmStandIn, raw_request: bytes) -> tuple[bytes, bytes]:
    """Sends bytes as they are over TLS; returns the answer's head and body."""
    context = ssl.create_default_context(cafile=str(arm.authority.trust_bundle_path))
    with socket.create_connection(("127.0.0.1", arm.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(raw_request)
        reply = b""
        while True:
            head, _, body = reply.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            if length is not None and len(body) >= length:
                return head, body[:length]
            chunk = tls.recv(4096)
            if not chunk:
                return head, body
            reply += chunk


def test_a_chunked_body_is_read_like_any_other(arm: ArmStandIn, signer: Signer) -> None:
    payload = json.dumps({"sku": {"capacity": 4}}).encode()
    head, body = exchange(arm, (
        f"PATCH {VMSS}?api-version={COMPUTE} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {signer.token(ALICE)}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n").encode()
        + f"{len(payload):x}\r\n".encode() + payload + b"\r\n0\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["sku"]["capacity"] == 4


def test_header_names_are_case_insensitive(arm: ArmStandIn, signer: Signer) -> None:
    head, _ = exchange(arm, (f"GET {VM1}?api-version={COMPUTE} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                             f"authorization: Bearer {signer.token(AGENT, appid=AGENT_APP)}\r\n\r\n").encode())
    assert head.startswith(b"HTTP/1.1 200")


def test_an_unparseable_request_gets_json_not_html(arm: ArmStandIn) -> None:
    head, body = exchange(arm, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                          b"X: " + b"y" * 70000 + b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431") or head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["error"]["code"]


SEGMENTS = st.sampled_from(["subscriptions", SUB, "resourceGroups", "rg-prod-web", "providers", "Microsoft.Compute",
                            "virtualMachines", "vm-web-01", "restart", "instanceView", "locations", "operations",
                            "Microsoft.Web", "sites", "..", "%00", "x" * 300, "ünïcode", ""])


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as shared:
        yield shared


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]), segments=st.lists(SEGMENTS, max_size=10),
       body=st.one_of(st.none(), st.binary(max_size=64)), api_version=st.sampled_from([None, COMPUTE, "", "banana"]))
def test_any_request_gets_an_arm_error_or_success_never_a_server_fault(
        arm: ArmStandIn, signer: Signer, session: requests.Session, method: str, segments: list[str],
        body: bytes | None, api_version: str | None) -> None:
    params = {"api-version": api_version} if api_version is not None else {}
    response = session.request(method, f"{arm.endpoint}/{'/'.join(segments)}", params=params, data=body,
                                headers={"Authorization": f"Bearer {signer.token(ALICE)}"}, timeout=10,
                                verify=str(arm.authority.trust_bundle_path))
    assert response.status_code < 500
    if response.status_code >= 400:
        assert response.json()["error"]["code"]


def test_the_cli_serves_until_terminated(signer: Signer, tmp_path: Path) -> None:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(signer.jwks()))
    process = subprocess.Popen(
        [sys.executable, "-m", "local_azure.arm", "--port", "0", "--state-dir", str(tmp_path / "state"),
         "--jwks-file", str(jwks_file), "--issuer", ISSUER],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready, "the CLI did not announce its endpoint"
        line = process.stdout.readline()
        endpoint = line.split(" on ")[1].split(";")[0]
        bundle = line.rsplit("trust ", 1)[1].strip()
        response = requests.get(f"{endpoint}{VM1}", params={"api-version": COMPUTE}, verify=bundle, timeout=10,
                                headers={"Authorization": f"Bearer {signer.token(AGENT, appid=AGENT_APP)}"})
        assert response.status_code == 200
        process.terminate()
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
