"""An Application Insights ingestion endpoint (Breeze) that keeps every telemetry envelope it receives.

The azure-monitor-opentelemetry exporter posts a JSON array of envelopes to `{IngestionEndpoint}/v2.1/track`
(and Breeze also takes newline-delimited envelopes, gzip or not); the answer is Breeze's
`{"itemsReceived": n, "itemsAccepted": n, "errors": []}` with 200, or 206 with one error per envelope it
refused. Live metrics (`/QuickPulseService.svc/ping|post` on the LiveEndpoint) are answered "nobody is
watching" so the exporter keeps quiet instead of retrying elsewhere.

    with AppInsightsStandIn() as insights:
        ...  # APPLICATIONINSIGHTS_CONNECTION_STRING=insights.connection_string, plus QUIET_EXPORTER
        event = insights.wait_for(lambda e: event_name(e) == "gates.run_ended", timeout=30)

Statsbeat (the SDK's own telemetry, sent to a Microsoft endpoint of its own), the OneSettings control
plane and the Azure VM resource detector (IMDS) do not use the connection string: `QUIET_EXPORTER` holds
the switches that keep a process using the exporter on loopback.

`python -m local_azure.appinsights --port 0` runs it in the foreground and prints what arrives.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from local_azure.lifecycle import Startable, report_until_interrupted

LOG = logging.getLogger("local_azure.appinsights")
SOCKET_TIMEOUT_SECONDS = 15.0
MAX_BODY_BYTES = 16 * 1024 * 1024  # Breeze's own limit for one request
EVENT_ENVELOPE = "Microsoft.ApplicationInsights.Event"

# Environment for a process whose exporter should talk to the stand-in only.
QUIET_EXPORTER: dict[str, str] = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",  # statsbeat goes to its own Microsoft endpoint
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",  # OneSettings polls settings.sdk.monitor.azure.com
    # The distro's default detectors include azure_vm, which asks IMDS on 169.254.169.254.
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
}

Envelope = dict[str, Any]


def event_name(envelope: Envelope) -> str | None:
    """The custom event's name when the envelope is one (`customEvents.name` in Log Analytics)."""
    if envelope.get("name") != EVENT_ENVELOPE:
        return None
    name = (envelope.get("data") or {}).get("baseData", {}).get("name")
    return name if isinstance(name, str) else None


def properties(envelope: Envelope) -> dict[str, Any]:
    """The envelope's custom dimensions (`baseData.properties`)."""
    found = (envelope.get("data") or {}).get("baseData", {}).get("properties") or {}
    return dict(found) if isinstance(found, dict) else {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    keeper: AppInsightsStandIn


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Kept-alive answers go out at once: with Nagle on, a reply written in two sends (headers, body)
    # waits for the client's delayed ACK, ~40 ms a request (the services answer without that delay).
    disable_nagle_algorithm = True
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    timeout = SOCKET_TIMEOUT_SECONDS
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s " + format, self.client_address[0], *args)

    def do_POST(self) -> None:
        path = "/" + urlsplit(self.path).path.lstrip("/")  # an endpoint with a trailing slash gives `//v2.1`
        try:
            if path in ("/v2.1/track", "/v2/track"):
                status, reply = self._track()
                self._send(status, reply)
            elif path in ("/QuickPulseService.svc/ping", "/QuickPulseService.svc/post"):
                self._read_body()
                self._send(200, None, {"x-ms-qps-subscribed": "false"})
            else:
                self._read_body()
                self._send(404, _breeze_error(0, 404, f"No endpoint at {path}."))
        except _BadRequest as bad:
            self.close_connection = True
            self._send(400, _breeze_error(0, 400, str(bad)))
        except Exception:  # the exporter gets Breeze's answer for a fault of ours, never a traceback
            LOG.exception("Application Insights stand-in failed on %s", self.path)
            self._send(500, _breeze_error(0, 500, "Internal server error."))

    def do_GET(self) -> None:
        self._send(404, _breeze_error(0, 404, "Use POST /v2.1/track."))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Requests too broken to parse still get Breeze's JSON, not the stdlib's HTML page."""
        self.close_connection = True
        self._send(code, _breeze_error(0, code, message or explain or "Bad request."))

    def _track(self) -> tuple[int, dict[str, Any]]:
        envelopes = _parse(self._read_body(), self.headers.get("Content-Encoding", ""))
        errors: list[dict[str, Any]] = []
        accepted: list[Envelope] = []
        for index, envelope in enumerate(envelopes):
            problem = self.server.keeper.refusal(envelope)
            if problem is None:
                accepted.append(envelope)
            else:
                errors.append({"index": index, "statusCode": 400, "message": problem})
        self.server.keeper.keep(accepted)
        reply = {"itemsReceived": len(envelopes), "itemsAccepted": len(accepted), "errors": errors}
        if not errors:
            return 200, reply
        return (206 if accepted else 400), reply

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length", "0") or "0")
        except ValueError as bad:
            raise _BadRequest("Invalid Content-Length.") from bad
        if length < 0 or length > MAX_BODY_BYTES:
            raise _BadRequest("The request body is too large.")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        body = b""
        while True:
            try:
                size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
            except ValueError as bad:
                raise _BadRequest("Malformed chunked body.") from bad
            if size < 0 or len(body) + size > MAX_BODY_BYTES:
                raise _BadRequest("The request body is too large.")
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return body
            body += self.rfile.read(size)
            self.rfile.readline(1024)

    def _send(self, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _BadRequest(Exception):
    pass


def _breeze_error(index: int, status: int, message: str) -> dict[str, Any]:
    return {"itemsReceived": 0, "itemsAccepted": 0, "errors": [{"index": index, "statusCode": status,
                                                                  "message": message}]}


def _parse(body: bytes, encoding: str) -> list[Envelope]:
    """A JSON array of envelopes, or one envelope per line; gzip (or deflate) when the client says so, or
    when the bytes say so (gzip's magic number)."""
    try:
        if encoding.lower() == "gzip" or body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        elif encoding.lower() == "deflate":
            body = zlib.decompress(body)
        text = body.decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as bad:
        raise _BadRequest("The request body could not be decoded.") from bad
    text = text.strip()
    if not text:
        raise _BadRequest("The request body is empty.")
    try:
        parsed = json.loads(text)
        items = parsed if isinstance(parsed, list) else [parsed]
    except json.JSONDecodeError:
        try:
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as bad:
            raise _BadRequest(f"Invalid JSON: {bad.msg} at line {bad.lineno}.") from bad
    return [item if isinstance(item, dict) else {"_invalid": item} for item in items]


class AppInsightsStandIn(Startable):
    def __init__(self, port: int = 0, host: str = "127.0.0.1", instrumentation_key: str | None = None) -> None:
        self.host = host
        self.instrumentation_key = instrumentation_key or str(uuid.uuid4())
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._kept: list[Envelope] = []
        self._arrived = threading.Condition()

    # ----- lifecycle ----------------------------------------------------------------------------
    def start(self) -> AppInsightsStandIn:
        """Returns once the server listens."""
        if self._server is not None:
            raise RuntimeError("the Application Insights stand-in is already started")
        server = _Server((self.host, self._requested_port), _Handler)
        server.keeper = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="appinsights-stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the Application Insights stand-in is not started")
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def connection_string(self) -> str:
        return (f"InstrumentationKey={self.instrumentation_key};IngestionEndpoint={self.endpoint};"
                f"LiveEndpoint={self.endpoint}")

    # ----- what arrived -------------------------------------------------------------------------
    def envelopes(self) -> list[Envelope]:
        with self._arrived:
            return list(self._kept)

    def events(self) -> list[Envelope]:
        """Only the custom events (`customEvents` rows)."""
        return [e for e in self.envelopes() if event_name(e) is not None]

    def clear(self) -> None:
        with self._arrived:
            self._kept.clear()

    def wait_for(self, predicate: Callable[[Envelope], bool], timeout: float = 30.0) -> Envelope:
        """The first envelope, received so far or within `timeout` seconds, that `predicate` accepts."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for envelope in self._kept:
                    if predicate(envelope):
                        return envelope
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    names = sorted({str(event_name(e) or e.get("name")) for e in self._kept})
                    raise TimeoutError(f"no matching envelope within {timeout:g} s; received: {names}")
                self._arrived.wait(remaining)

    # ----- called by the handler ----------------------------------------------------------------
    def refusal(self, envelope: Envelope) -> str | None:
        """Why Breeze would refuse this envelope, or None."""
        if "_invalid" in envelope:
            return "Each item must be a JSON object."
        for field in ("name", "time", "iKey"):
            if not envelope.get(field):
                return f"Field '{field}' on type 'Envelope' is required but missing or empty."
        if str(envelope["iKey"]).lower() != self.instrumentation_key.lower():
            return "Invalid instrumentation key"
        if not isinstance(envelope.get("data"), dict) or not envelope["data"].get("baseType"):
            return "Field 'baseType' on type 'Data' is required but missing or empty."
        return None

    def keep(self, envelopes: list[Envelope]) -> None:
        if not envelopes:
            return
        with self._arrived:
            self._kept.extend(envelopes)
            self._arrived.notify_all()


def main(argv: list[str] | None = None) -> int:
    from local_azure.processes import exit_on_sigterm

    parser = argparse.ArgumentParser(prog="python -m local_azure.appinsights",
                                     description="Application Insights ingestion stand-in")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--instrumentation-key", default=None)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    with AppInsightsStandIn(args.port, args.host, args.instrumentation_key) as insights:
        print(f"APPLICATIONINSIGHTS_CONNECTION_STRING={insights.connection_string}", flush=True)
        report_until_interrupted(
            insights.envelopes,
            lambda envelope: f"{envelope.get('name')}: {event_name(envelope) or ''} {properties(envelope)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
