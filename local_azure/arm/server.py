"""`ArmStandIn`: the ARM REST endpoint over HTTPS on a thread, with start/stop and test inspection."""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local_azure.lifecycle import Startable
from local_azure.tls import LocalCertificateAuthority

from .api import ArmApi, Call, Reply
from .control import PREFIX, ControlApi
from .faults import Fault
from .state import ArmState
from .tokens import TokenValidator

LOG = logging.getLogger("local_azure.arm")
SOCKET_TIMEOUT_SECONDS = 15.0  # a client that stalls mid-request (or mid-handshake) frees its thread
MAX_BODY_BYTES = 4 * 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    api: ArmApi
    control: ControlApi


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Kept-alive answers go out at once: with Nagle on, a reply written in two sends (headers, body)
    # waits for the client's delayed ACK, ~40 ms a request (the services answer without that delay).
    disable_nagle_algorithm = True
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    timeout = SOCKET_TIMEOUT_SECONDS
    server: _Server

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        request_id = str(uuid.uuid4())
        try:
            reply = self._reply()
        except Exception:  # the client gets ARM's answer for a fault of ours, never a traceback
            LOG.exception("ARM stand-in failed on %s %s", self.command, self.path)
            reply = Reply(500, {"error": {"code": "InternalServerError",
                                          "message": "Encountered internal server error. Diagnostic information: "
                                                     f"timestamp '', subscription id '', tracking id '{request_id}'"}})
        self._send(reply, request_id)

    def _reply(self) -> Reply:
        length_header = self.headers.get("Content-Length", "0") or "0"
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            return Reply(400, {"error": {"code": "InvalidRequestContent", "message": "Invalid Content-Length."}})
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            return Reply(413, {"error": {"code": "RequestEntityTooLarge",
                                         "message": "The request content size exceeds the maximum allowed."}})
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
            if body is None:
                self.close_connection = True
                return Reply(400, {"error": {"code": "InvalidRequestContent",
                                             "message": "The chunked request body is malformed or too large."}})
        else:
            body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_port}"
        call = Call(self.command, split.path, parse_qs(split.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()}, body, split.query, f"https://{host}")
        if split.path.startswith(PREFIX):
            if not ipaddress.ip_address(self.client_address[0]).is_loopback:
                return Reply(403, {"error": {"code": "Forbidden", "message": "The control API is loopback only."}})
            return self.server.control.handle(call)
        return self.server.api.handle(call)

    def _read_chunked(self) -> bytes | None:
        body = b""
        while True:
            size_line = self.rfile.readline(1024)
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                return None
            if size < 0 or len(body) + size > MAX_BODY_BYTES:
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return body
            body += self.rfile.read(size)
            self.rfile.readline(1024)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Requests too broken to parse still get ARM's JSON, not the stdlib's HTML page."""
        self.close_connection = True
        reply = Reply(code, {"error": {"code": "BadRequest" if code == 400 else f"Http{code}",
                                       "message": message or explain or "The request is invalid."}})
        self._send(reply, str(uuid.uuid4()))

    def _send(self, reply: Reply, request_id: str) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        headers = {
            "Cache-Control": "no-cache",
            "Pragma": "no-cache",
            "x-ms-request-id": request_id,
            "x-ms-routing-request-id": f"LOCAL:{request_id}",
            "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
            "X-Content-Type-Options": "nosniff",
            **reply.headers,
        }
        request_headers = getattr(self, "headers", None)  # absent when the request could not be parsed
        client_request_id = request_headers.get("x-ms-client-request-id") if request_headers else None
        if client_request_id:
            headers["x-ms-client-request-id"] = client_request_id
        if payload:
            headers["Content-Type"] = "application/json; charset=utf-8"
        headers["Content-Length"] = str(len(payload))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s - %s", self.address_string(), format % args)


class ArmStandIn(Startable):
    """Azure Resource Manager on https://127.0.0.1:<port> for `azure-core` clients.

    Resources, role assignments and locks come from `fixture_path` (default `local_azure/fixtures/arm.json`)
    and live in memory; `reset()` reloads them. The TLS certificate comes from `certificate_authority`, or
    the CA in `tls_dir`, or one kept in `state_dir/tls`. Tokens are checked against `jwks` (a JWKS or one
    JWK) or the JWKS fetched from `jwks_uri` over https trusting the local CA; `issuers` limits the trusted
    issuers (None trusts any issuer whose keys verify). A long-running operation answers `InProgress` to
    `operation_polls` polls and completes on the next; with `operation_seconds` it instead completes after
    that long, polled or not.
    """

    def __init__(self, fixture_path: Path | None = None, *, state_dir: Path, jwks: dict[str, Any] | None = None,
                 jwks_uri: str | None = None, issuers: list[str] | None = None, host: str = "127.0.0.1",
                 port: int = 0, operation_polls: int = 2, operation_seconds: float | None = None,
                 operation_retry_after: int = 0, tls_dir: Path | None = None,
                 certificate_authority: LocalCertificateAuthority | None = None) -> None:
        self.host = host
        self.state_dir = Path(state_dir)
        self._requested_port = port
        # Share one CA with the other HTTPS stand-ins (pass it, or its directory) so one bundle trusts them all.
        self.authority = certificate_authority or LocalCertificateAuthority.ensure(
            Path(tls_dir) if tls_dir else self.state_dir / "tls")
        self.state = ArmState(Path(fixture_path) if fixture_path else None, operation_polls, operation_seconds)
        validator = TokenValidator(jwks, jwks_uri, issuers, self.authority.trust_bundle_path)
        self._api = ArmApi(self.state, validator, operation_retry_after)
        self._control = ControlApi(self.state)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> ArmStandIn:
        """Returns once the endpoint listens; `port` then holds the bound port."""
        if self._server is not None:
            raise RuntimeError("already started")
        server = _Server((self.host, self._requested_port), _Handler, bind_and_activate=False)
        server.api = self._api
        server.control = self._control
        try:
            server.server_bind()
            server.server_activate()
        except OSError:
            server.server_close()
            raise
        context = self.authority.issue_server_certificate("arm").server_context()
        # The handshake happens on the handler's thread, bounded by its socket timeout, so a silent client
        # cannot stall accept().
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="arm-stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(5.0)
        self._server = None
        self._thread = None

    def wait(self) -> None:
        """Block until stopped (the CLI's foreground mode)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    # ---- addressing ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("not started")
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"https://{host}:{self.port}"

    def client_environment(self) -> dict[str, str]:
        """Variables that make requests and azure-core trust this endpoint's certificate."""
        return self.authority.client_environment()

    # ---- inspection and control (the same as the /_standin/ API) ---------------------------------
    def activity(self) -> list[dict[str, Any]]:
        """Every write attempted, in order: time, principalId, principalName, action, resourceId, outcome."""
        with self.state.lock:
            self.state.settle_due_operations()
            return [dict(entry) for entry in self.state.activity]

    def resource(self, resource_id: str) -> dict[str, Any]:
        with self.state.lock:
            self.state.settle_due_operations()
            found = self.state.resources.get(resource_id.rstrip("/").lower())
            if found is None:
                raise KeyError(resource_id)
            return found.inspection()

    def change_by_hand(self, resource_id: str, changes: dict[str, Any]) -> None:
        """Change a resource as someone would outside the app (the portal, a script): `changes` maps JSON
        pointers into its ARM body (or `powerState`/`provisioningState`) to values."""
        with self.state.lock:
            found = self.state.resources.get(resource_id.rstrip("/").lower())
            if found is None:
                raise KeyError(resource_id)
            found.apply(changes, {})

    def add_fault(self, kind: str, **options: Any) -> None:
        """`add_fault("throttle", count=1, retry_after=1)`, `add_fault("claims_challenge", principal=oid, claims=...)`,
        `add_fault("operation_failure", resource=id, code=..., message=...)`."""
        fault = Fault.from_json({"kind": kind, **options})
        with self.state.lock:
            self.state.faults.append(fault)

    def clear_faults(self) -> None:
        with self.state.lock:
            self.state.faults.clear()

    def held_answers(self, within: str | None = None) -> int:
        """Answers a slow_answer fault is holding back right now (to requests on a scope `within`)."""
        return self.state.answers_held(within)

    def release_answers(self, within: str | None = None) -> None:
        """Send the answers a slow_answer fault holds now (to whoever is still listening)."""
        self.state.release_answers(within)

    def assign_role(self, principal_id: str, role: str, scope: str) -> str:
        with self.state.lock:
            return self.state.access.assign(principal_id, role, scope).name

    def remove_role_assignments(self, principal_id: str, role: str | None = None, scope: str | None = None) -> int:
        with self.state.lock:
            return len(self.state.access.unassign(principal_id=principal_id, role=role, scope=scope))

    def add_lock(self, scope: str, level: str = "ReadOnly", name: str | None = None) -> str:
        return self.state.add_lock(scope, level, name).name

    def remove_lock(self, name: str) -> None:
        with self.state.lock:
            self.state.locks.pop(name, None)

    def reset(self) -> None:
        """Back to the fixture: resources, role assignments and locks reloaded; faults, operations and the
        activity log emptied."""
        self.state.release_answers()
        self.state.load()
