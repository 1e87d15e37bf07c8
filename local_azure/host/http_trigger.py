"""HTTP triggers: a threaded HTTP server that routes to functions as the Functions host does.

Order of work for each request, as in App Service: Easy Auth first (and forged identity headers
dropped), then routing under the route prefix (404, or 405 when only the method is wrong), then the
function's auth level (function key or master key), then the function itself.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import azure.functions as func

from local_azure.host.easy_auth import EasyAuth, Principal, strip_injected_headers
from local_azure.host.invocation import Invoker
from local_azure.host.mcp import McpServer
from local_azure.host.routes import RouteTemplate
from local_azure.host.web import IncomingRequest, Reply

LOG = logging.getLogger("local_azure.host")
MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's request size limit
REQUEST_READ_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class FunctionKeys:
    function_keys: frozenset[str]
    master_key: str

    @classmethod
    def from_settings(cls, function_keys: str | None, master_key: str | None) -> FunctionKeys:
        keys = frozenset(key.strip() for key in (function_keys or "").split(",") if key.strip())
        return cls(keys or frozenset({secrets.token_urlsafe(30)}), master_key or secrets.token_urlsafe(30))

    @property
    def default_function_key(self) -> str:
        return sorted(self.function_keys)[0]

    def allows(self, auth_level: str, presented: str | None) -> bool:
        if auth_level == "anonymous":
            return True
        if not presented:
            return False
        if secrets.compare_digest(presented, self.master_key):
            return True
        return auth_level == "function" and any(secrets.compare_digest(presented, key) for key in self.function_keys)


@dataclass(frozen=True)
class HttpRoute:
    template: RouteTemplate
    invoker: Invoker

    @property
    def methods(self) -> tuple[str, ...]:
        return self.invoker.spec.methods


def _response_reply(result: Any) -> Reply:
    if result is None:
        return Reply(204)
    if isinstance(result, str | bytes):
        result = func.HttpResponse(result)
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"an HTTP function must return func.HttpResponse, str or bytes, not {type(result).__name__}")
    headers = [(str(name), str(value)) for name, value in result.headers.items()]
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", f"{result.mimetype}; charset={result.charset}"))
    return Reply(result.status_code, headers, result.get_body() or b"")


class HttpDispatcher:
    def __init__(self, invokers: list[Invoker], route_prefix: str, keys: FunctionKeys,
                 easy_auth: EasyAuth | None, mcp: McpServer | None = None) -> None:
        self.mcp = mcp
        self.route_prefix = route_prefix.strip("/")
        self.keys = keys
        self.easy_auth = easy_auth
        routes = [HttpRoute(RouteTemplate.parse(invoker.spec.route), invoker) for invoker in invokers]
        self.routes = sorted(routes, key=lambda route: route.template.precedence)

    def handle(self, request: IncomingRequest) -> Reply:
        # Identity headers only ever come from Easy Auth, never from the client.
        request.headers = strip_injected_headers(request.headers)
        principal: Principal | None = None
        if self.easy_auth is not None:
            outcome = self.easy_auth.front(request)
            if isinstance(outcome, Reply):
                return outcome
            principal = outcome
        elif request.path.startswith("/.auth/"):
            return Reply.text(404, "App Service Authentication is not enabled.")
        if self.mcp is not None and self.mcp.handles(request.path):
            identity = principal.headers(False) if principal and self.easy_auth else []
            return self.mcp.handle(request, identity)
        relative = self._relative_path(request.path)
        if relative is None:
            return Reply(404)
        matched = [(route, values) for route in self.routes
                   if (values := route.template.match(relative)) is not None]
        if not matched:
            return Reply(404)
        chosen = next(((route, values) for route, values in matched if request.method in route.methods), None)
        if chosen is None:
            allowed = sorted({method for route, _ in matched for method in route.methods})
            return Reply(405, [("Allow", ", ".join(allowed))])
        route, route_params = chosen
        presented = request.header("x-functions-key") or request.query.get("code")
        if not self.keys.allows(route.invoker.spec.auth_level, presented):
            return Reply(401)
        return self._invoke(route, route_params, request, principal)

    def _relative_path(self, path: str) -> str | None:
        if not self.route_prefix:
            return path
        prefix = f"/{self.route_prefix}"
        if path.lower() == prefix.lower():
            return ""
        if path.lower().startswith(prefix.lower() + "/"):
            return path[len(prefix) + 1:]
        return None

    def _invoke(self, route: HttpRoute, route_params: dict[str, str], request: IncomingRequest,
                principal: Principal | None) -> Reply:
        headers: dict[str, str] = {}
        identity = principal.headers(self.easy_auth.settings.token_store) if principal and self.easy_auth else []
        for name, value in [*request.headers, *identity]:
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        http_request = func.HttpRequest(
            method=request.method,
            url=f"{request.origin}{request.path_and_query}",
            headers=headers,
            params=request.query,
            route_params=route_params,
            body=request.body,
        )
        try:
            invocation = route.invoker.invoke(http_request)
            return _response_reply(invocation.return_value)
        except Exception:
            LOG.exception("function %s failed", route.invoker.spec.name)
            return Reply(500)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Kept-alive answers go out at once: with Nagle on, a reply written in two sends (headers, body)
    # waits for the client's delayed ACK, ~40 ms a request (the services answer without that delay).
    disable_nagle_algorithm = True
    timeout = REQUEST_READ_TIMEOUT_SECONDS
    server: _Server

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length_header = self.headers.get("Content-Length")
        try:
            length = int(length_header) if length_header else 0
        except ValueError:
            self._send(Reply.text(400, "Bad Content-Length"), head=False)
            return
        if length > MAX_BODY_BYTES:
            self._send(Reply.text(413, "Request body too large"), head=False)
            self.close_connection = True
            return
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._send(Reply.text(411, "Length Required"), head=False)
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        request = IncomingRequest(
            method=self.command.upper(), path=unquote(split.path) or "/", query_string=split.query,
            headers=list(self.headers.items()), body=body, scheme="http",
        )
        try:
            reply = self.server.dispatcher.handle(request)
        except Exception:
            LOG.exception("host error serving %s %s", self.command, split.path)
            reply = Reply(500)
        self._send(reply, head=self.command.upper() == "HEAD")

    def _send(self, reply: Reply, head: bool) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if not head:
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The listen backlog: socketserver's 5 drops what a storm's burst of connections brings beyond it.
    request_queue_size = 512
    dispatcher: HttpDispatcher


class HttpListener:
    def __init__(self, dispatcher: HttpDispatcher, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.dispatcher = dispatcher
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="http-listener", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
