"""The Entra ID stand-in's HTTPS server: routes, TLS, lifecycle, and helpers for other stand-ins' tests."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import logging
import ssl
import threading
from collections import deque
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local_azure.entra.authorize import AuthorizeEndpoint, error_page
from local_azure.entra.directory import Directory
from local_azure.entra.errors import OAuthError
from local_azure.entra.grants import Fault, GrantStore
from local_azure.entra.replies import Reply
from local_azure.entra.signing import SigningKey
from local_azure.entra.token_endpoint import TokenEndpoint
from local_azure.entra.tokens import Lifetimes, TokenMinter
from local_azure.lifecycle import Startable
from local_azure.tls import LocalCertificateAuthority

LOG = logging.getLogger("local_azure.entra")
MAX_BODY_BYTES = 1 << 20
MAX_DRAINED_BYTES = 16 << 20
SOCKET_TIMEOUT_SECONDS = 30.0
FAULTS_PATH = "/_standin/faults"
SECRET_PARAMETERS = frozenset({"client_secret", "client_assertion", "assertion", "password", "refresh_token", "code",
                               "code_verifier"})
MASKED = "***"


class _Server(ThreadingHTTPServer):
    """TLS is negotiated in the request's thread, so a slow or plain-HTTP client never blocks `accept`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], stand_in: EntraStandIn, context: ssl.SSLContext) -> None:
        self.stand_in = stand_in
        self.tls = context
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(SOCKET_TIMEOUT_SECONDS)
        try:
            secure = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            LOG.debug("TLS handshake with %s failed: %s", client_address, error)
            return
        try:
            super().finish_request(secure, client_address)
        finally:
            with contextlib.suppress(OSError):
                secure.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        LOG.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Kept-alive answers go out at once: with Nagle on, a reply written in two sends (headers, body)
    # waits for the client's delayed ACK, ~40 ms a request (the services answer without that delay).
    disable_nagle_algorithm = True
    server_version = "local-entra"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s " + format, self.client_address[0], *args)

    # A request line or headers http.server cannot parse: answer HTTP/1.1 with OAuth JSON, not an HTML page.
    default_request_version = "HTTP/1.1"

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        reply = Reply.oauth_error(OAuthError("invalid_request", 90014, message or "The request is malformed.",
                                             status=code))
        self.close_connection = True
        self.send_response(code, message)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(reply.body)

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_DELETE(self) -> None:
        self._answer("DELETE")

    def do_PUT(self) -> None:
        self._answer("PUT")

    def _answer(self, method: str) -> None:
        correlation_id = self.headers.get("client-request-id")
        try:
            body = self._read_body()
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = self.server.stand_in.route(method, self.path, headers, body,
                                               self.client_address[0])
        except _BadBody as problem:
            reply = Reply.oauth_error(OAuthError("invalid_request", 90014, str(problem), status=problem.status),
                                      correlation_id)
        except Exception:  # the answer must stay OAuth JSON, whatever went wrong in here
            LOG.exception("Entra stand-in failed on %s %s", method, urlsplit(self.path).path)
            reply = Reply.oauth_error(OAuthError("server_error", 90033, "A transient error has occurred. "
                                                 "Please try again.", status=500), correlation_id)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if correlation_id:
            self.send_header("client-request-id", correlation_id)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(reply.body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise _BadBody("Chunked request bodies are not supported; send Content-Length.")
        length_text = self.headers.get("Content-Length", "0") or "0"
        try:
            length = int(length_text)
        except ValueError:
            self.close_connection = True
            raise _BadBody("The Content-Length header is not a number.") from None
        if length < 0:
            self.close_connection = True
            raise _BadBody("The Content-Length header is negative.")
        if length > MAX_BODY_BYTES:
            # Read what a client reasonably sends before answering, so it gets the answer rather than a reset.
            remaining = min(length, MAX_DRAINED_BYTES)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
            self.close_connection = True
            raise _BadBody("The request body is too large.", status=413)
        return self.rfile.read(length) if length else b""


class _BadBody(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class EntraStandIn(Startable):
    """Microsoft Entra ID's v2.0 endpoints for one tenant, over HTTPS on loopback.

    `state_dir` keeps the signing key (tokens stay valid across restarts on the same port) and, unless
    a shared `certificate_authority` is given, the local CA under `state_dir/tls`.
    """

    def __init__(self, fixture_path: Path | None = None, *, state_dir: Path, host: str = "127.0.0.1", port: int = 0,
                 certificate_authority: LocalCertificateAuthority | None = None,
                 lifetimes: Lifetimes | None = None) -> None:
        self.directory = Directory.load(fixture_path)
        self.state_dir = Path(state_dir)
        self.host = host
        self._requested_port = port
        self.certificate_authority = certificate_authority or LocalCertificateAuthority.ensure(self.state_dir / "tls")
        self.lifetimes = lifetimes or Lifetimes()
        self.key = SigningKey.in_directory(self.state_dir)
        self.grants = GrantStore()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._minter: TokenMinter | None = None
        self._seen: deque[dict[str, str]] = deque(maxlen=100)
        self._seen_lock = threading.Lock()

    # Lifecycle -----------------------------------------------------------------------------------

    def start(self) -> EntraStandIn:
        if self._server is not None:
            return self
        certificate = self.certificate_authority.issue_server_certificate("entra")
        server = _Server((self.host, self._requested_port), self, certificate.server_context())
        self._server = server
        self._minter = TokenMinter(self.directory, self.key, self.issuer, self.lifetimes)
        self._token_endpoint = TokenEndpoint(self.directory, self._minter, self.grants)
        self._authorize = AuthorizeEndpoint(self.directory, self.grants, self.lifetimes)
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"entra-standin-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # Addresses -----------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the Entra stand-in is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self.port}"

    @property
    def tenant_id(self) -> str:
        return self.directory.tenant_id

    @property
    def authority(self) -> str:
        return f"{self.base_url}/{self.tenant_id}"

    @property
    def issuer(self) -> str:
        return f"{self.authority}/v2.0"

    @property
    def jwks_uri(self) -> str:
        return f"{self.authority}/discovery/v2.0/keys"

    @property
    def token_endpoint(self) -> str:
        return f"{self.authority}/oauth2/v2.0/token"

    @property
    def minter(self) -> TokenMinter:
        if self._minter is None:
            raise RuntimeError("the Entra stand-in is not started")
        return self._minter

    # For tests of other parts ------------------------------------------------------------------

    def issue_token(self, scope: str, *, client_id: str, user: str | None = None,
                    lifetime: dt.timedelta | None = None, issued_at: dt.datetime | None = None,
                    claims: Mapping[str, Any] | None = None) -> str:
        """A token as the token endpoint would issue it, without a request: a user's delegated token when
        `user` (UPN or oid) is given, else the client's app token. `issued_at` in the past with a short
        `lifetime` makes an expired one; `claims` adds or overrides claims (e.g. `{"amr": ["pwd", "mfa"]}`).
        """
        client = self.directory.app(client_id)
        if client is None:
            raise ValueError(f"no app with client id {client_id} in the fixture")
        try:
            request = self.directory.parse_scope(scope)
        except OAuthError as error:
            raise ValueError(str(error)) from None
        if user is None:
            roles = self.directory.application_grant(client, request.resource) or ()
            return self.minter.app_access_token(client, request.resource, roles, lifetime=lifetime, now=issued_at,
                                                extra=claims)
        person = self.directory.user(user)
        if person is None:
            raise ValueError(f"no user {user} in the fixture")
        scopes = request.resource.scopes if request.default else request.scopes
        return self.minter.user_access_token(person, client, request.resource, scopes, lifetime=lifetime,
                                             now=issued_at, extra=claims)

    def add_fault(self, error: str, *, grant: str | None = None, user: str | None = None,
                  client_id: str | None = None, claims: str | None = None, code: int | None = None,
                  count: int | None = 1) -> Fault:
        """Make the next `count` matching token requests fail with `error` (see `grants.FAULT_ERRORS`)."""
        document = {"error": error, "grant": grant, "user": user, "client_id": client_id, "claims": claims,
                    "code": code, "count": count}
        return self.grants.add_fault(Fault.from_json(document))

    def clear_faults(self) -> None:
        self.grants.clear_faults()

    # Routing -----------------------------------------------------------------------------------

    def route(self, method: str, target: str, headers: Mapping[str, str], body: bytes, peer: str) -> Reply:
        """Answer one request; `headers` have lower-case names."""
        parts = urlsplit(target)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if path == FAULTS_PATH:
            return self._faults(method, body, peer)
        segments = [segment for segment in path.split("/") if segment]
        if len(segments) >= 3 and segments[0] == "common" and segments[1] == "userrealm" and method == "GET":
            return self._user_realm(segments[2])
        if not segments:
            return Reply.json({"error": "not_found"}, status=404)
        tenant, rest = segments[0], "/".join(segments[1:])
        known_routes = ("v2.0/.well-known/openid-configuration", "discovery/v2.0/keys", "oauth2/v2.0/token",
                        "oauth2/v2.0/authorize", "oauth2/v2.0/logout")
        if rest not in known_routes:
            return Reply.json({"error": "not_found", "error_description": f"No such endpoint: {path}"}, status=404)
        if not self.directory.knows_tenant(tenant):
            error = OAuthError.unknown_tenant(tenant)
            return error_page(error) if rest.endswith("authorize") else Reply.oauth_error(error)
        form = _form(headers, body)
        if rest == "v2.0/.well-known/openid-configuration":
            return Reply.json(self.openid_configuration(), cache=True)
        if rest == "discovery/v2.0/keys":
            return Reply.json({"keys": [self.key.jwk(self.issuer)]}, cache=True)
        if rest == "oauth2/v2.0/token":
            if method != "POST":
                return Reply.oauth_error(OAuthError.post_only(method))
            self._remember(form, headers)
            try:
                return Reply.json(self._token_endpoint.handle(form, headers.get("authorization")))
            except OAuthError as error:
                return Reply.oauth_error(error, headers.get("client-request-id"))
        if rest == "oauth2/v2.0/authorize":
            if method == "POST":
                return self._authorize.post(form, path)
            return self._authorize.get(query, path)
        return self._logout(query)

    @property
    def token_requests(self) -> list[dict[str, str]]:
        """The last token requests' parameters, secrets and tokens masked: what a client really posted."""
        with self._seen_lock:
            return list(self._seen)

    def _remember(self, form: Mapping[str, str], headers: Mapping[str, str]) -> None:
        seen = {name: (MASKED if name in SECRET_PARAMETERS else value) for name, value in form.items()}
        if headers.get("authorization", "").lower().startswith("basic "):
            seen["(authorization)"] = "Basic " + MASKED
        with self._seen_lock:
            self._seen.append(seen)

    def openid_configuration(self) -> dict[str, Any]:
        base = self.authority
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "jwks_uri": self.jwks_uri,
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": self.issuer,
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "code_challenge_methods_supported": ["S256", "plain"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", "password",
                                      "urn:ietf:params:oauth:grant-type:jwt-bearer"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "amr", "nonce", "name", "oid", "tid",
                                 "preferred_username", "email", "roles", "ver"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    def _user_realm(self, username: str) -> Reply:
        # MSAL asks before a password grant; a managed (cloud-only) account answers like this.
        domain = username.rpartition("@")[2]
        return Reply.json({"ver": "1.0", "account_type": "Managed", "domain_name": domain,
                           "cloud_instance_name": "microsoftonline.com",
                           "cloud_audience_urn": "urn:federation:MicrosoftOnline"})

    def _logout(self, query: Mapping[str, str]) -> Reply:
        target = query.get("post_logout_redirect_uri", "")
        parts = urlsplit(target)
        if target and parts.scheme in ("http", "https") and parts.hostname in ("127.0.0.1", "localhost", "::1"):
            return Reply.redirect(target)
        return Reply.page('<!doctype html><meta name="viewport" content="width=device-width, initial-scale=1">'
                          "<title>Signed out</title><p>You signed out of your account.</p>")

    def _faults(self, method: str, body: bytes, peer: str) -> Reply:
        try:
            loopback = ipaddress.ip_address(peer).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return Reply.json({"error": "forbidden", "error_description": "The control endpoint is loopback only."},
                              status=403)
        if method == "GET":
            return Reply.json({"faults": [fault.to_json() for fault in self.grants.faults()]})
        if method == "DELETE":
            self.grants.clear_faults()
            return Reply(204)
        if method != "POST":
            return Reply.json({"error": "method_not_allowed"}, status=405)
        try:
            fault = self.grants.add_fault(Fault.from_json(json.loads(body or b"null")))
        except ValueError as error:  # JSONDecodeError is a ValueError
            return Reply.json({"error": "invalid_request", "error_description": str(error)}, status=400)
        return Reply.json(fault.to_json(), status=201)


def _form(headers: Mapping[str, str], body: bytes) -> dict[str, str]:
    content_type = headers.get("content-type", "")
    if not body or "application/x-www-form-urlencoded" not in content_type.lower():
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    form: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        form.setdefault(name, value)  # the first of repeated parameters counts
    return form
