"""The Functions MCP extension's endpoint, as the local host serves it: streamable HTTP at
`/runtime/webhooks/mcp`, guarded by the `mcp_extension` system key (`x-functions-key` header or `code`
query; the master key also opens it) unless host.json's `extensions.mcp.system.webhookAuthorizationLevel`
is `Anonymous`, behind Easy Auth when that is configured.

What the extension does, and so what this does: JSON-RPC over POST (`initialize`, `ping`, `tools/list`,
`tools/call`; notifications are accepted with 202), answered as `application/json`; a session id on
`initialize` (`Mcp-Session-Id`); no server-initiated stream (GET is 405, which clients accept). A tool
call becomes one invocation of the function whose `mcpToolTrigger` names the tool, with the
ToolInvocationContext as JSON: `name`, `arguments`, `sessionid`, `clientinfo` and
`transport.properties.headers` (the caller's headers, so a function can read its bearer token).
Required tool properties are checked before the function runs (-32602, as the extension does).
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from local_azure.host.invocation import Invoker
from local_azure.host.web import IncomingRequest, Reply

LOG = logging.getLogger("local_azure.host")
MCP_PATH = "/runtime/webhooks/mcp"
SYSTEM_KEY_NAME = "mcp_extension"
PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32600, -32601, -32602
# The Functions host never forwards its own identity headers nor the keys to a function.
_HIDDEN_HEADERS = ("x-functions-key",)


@dataclass
class McpServer:
    invokers: list[Invoker]
    system_key: str
    master_key: str
    name: str = "sre-gates"
    version: str = "1.0.0"
    instructions: str = ""
    # extensions.mcp.system.webhookAuthorizationLevel: "System" (the default) needs the key; "Anonymous"
    # leaves authentication to Easy Auth in front.
    authorization_level: str = "System"
    _sessions: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.tools = {str(i.spec.trigger.properties["toolName"]): i for i in self.invokers}

    def handles(self, path: str) -> bool:
        return path.rstrip("/").lower() == MCP_PATH

    def handle(self, request: IncomingRequest, identity: list[tuple[str, str]]) -> Reply:
        presented = request.header("x-functions-key") or request.query.get("code") or ""
        keyed = bool(presented) and (secrets.compare_digest(presented, self.system_key)
                                     or secrets.compare_digest(presented, self.master_key))
        if self.authorization_level.lower() != "anonymous" and not keyed:
            return Reply.text(401, "The MCP endpoint needs the mcp_extension system key (x-functions-key).")
        if request.method == "GET":
            return Reply(405, [("Allow", "POST, DELETE")])
        if request.method == "DELETE":
            self._sessions.discard(request.header("Mcp-Session-Id") or "")
            return Reply(200)
        if request.method != "POST":
            return Reply(405, [("Allow", "POST, DELETE")])
        try:
            message = json.loads(request.body or b"null")
        except ValueError:
            return _json(_error(None, -32700, "Parse error"), 400)
        headers = [(k, v) for k, v in [*request.headers, *identity] if k.lower() not in _HIDDEN_HEADERS]
        session = request.header("Mcp-Session-Id") or ""
        if isinstance(message, list):
            replies = [r for m in message if (r := self._one(m, headers, session)) is not None]
            return _json(replies) if replies else Reply(202)
        if isinstance(message, dict) and message.get("method") == "initialize":
            session = uuid.uuid4().hex
            self._sessions.add(session)
            reply = self._one(message, headers, session)
            return _json(reply, headers=[("Mcp-Session-Id", session)])
        reply = self._one(message, headers, session)
        return _json(reply) if reply is not None else Reply(202)

    def _one(self, message: Any, headers: list[tuple[str, str]], session: str) -> dict[str, Any] | None:
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0" or "method" not in message:
            if isinstance(message, dict) and ("result" in message or "error" in message):
                return None  # a client's answer to a server request: none are sent
            return _error(message.get("id") if isinstance(message, dict) else None, INVALID_REQUEST,
                          "Invalid Request")
        method, params, request_id = message["method"], message.get("params") or {}, message.get("id")
        if request_id is None:
            return None  # a notification (initialized, cancelled, ...)
        if method == "initialize":
            asked = params.get("protocolVersion")
            version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[-1]
            result: dict[str, Any] = {
                "protocolVersion": version, "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": self.name, "version": self.version}}
            if self.instructions:
                result["instructions"] = self.instructions
            return _result(request_id, result)
        if method == "ping":
            return _result(request_id, {})
        if method == "tools/list":
            return _result(request_id, {"tools": [_tool(i) for i in self.invokers]})
        if method == "tools/call":
            return self._call(request_id, params, headers, session)
        return _error(request_id, METHOD_NOT_FOUND, f"Method not found: {method}")

    def _call(self, request_id: Any, params: dict[str, Any], headers: list[tuple[str, str]],
              session: str) -> dict[str, Any]:
        name = params.get("name")
        invoker = self.tools.get(str(name))
        if invoker is None:
            return _error(request_id, INVALID_PARAMS, f"Unknown tool: '{name}'")
        arguments = params.get("arguments") or {}
        missing = [p["propertyName"] for p in _properties(invoker) if p.get("isRequired")
                   and arguments.get(p["propertyName"]) in (None, "")]
        if missing:
            return _error(request_id, INVALID_PARAMS, "One or more required tool properties are missing values. "
                                                      f"Please provide: {', '.join(missing)}")
        context = {
            "name": name, "arguments": arguments, "sessionid": session or None,
            "transport": {"name": "http-streamable", "sessionId": session or None,
                          "properties": {"headers": dict(headers)}},
        }
        try:
            value = invoker.invoke(json.dumps(context)).return_value
        except Exception as error:
            LOG.exception("MCP tool %s failed", name)
            return _result(request_id, {"content": [{"type": "text", "text": f"{type(error).__name__}"}],
                                        "isError": True})
        text = value if isinstance(value, str) else json.dumps(value)
        return _result(request_id, {"content": [{"type": "text", "text": text}], "isError": False})


def _properties(invoker: Invoker) -> list[dict[str, Any]]:
    raw = invoker.spec.trigger.properties.get("toolProperties") or "[]"
    properties = json.loads(raw) if isinstance(raw, str) else raw
    return [p for p in properties if isinstance(p, dict) and p.get("propertyName")]


_SCHEMA_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean",
                 "object": "object", "datetime": "string"}


def _tool(invoker: Invoker) -> dict[str, Any]:
    """The tool as tools/list shows it: the input schema built from the trigger's toolProperties."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for p in _properties(invoker):
        schema: dict[str, Any] = {"type": _SCHEMA_TYPES.get(str(p.get("propertyType", "string")).lower(), "string")}
        if p.get("enumValues"):
            schema["enum"] = list(p["enumValues"])
        if p.get("isArray"):
            schema = {"type": "array", "items": schema}
        if p.get("description"):
            schema["description"] = p["description"]
        properties[p["propertyName"]] = schema
        if p.get("isRequired"):
            required.append(p["propertyName"])
    trigger = invoker.spec.trigger.properties
    tool: dict[str, Any] = {"name": trigger["toolName"], "inputSchema": {"type": "object", "properties": properties}}
    if required:
        tool["inputSchema"]["required"] = required
    if trigger.get("description"):
        tool["description"] = trigger["description"]
    return tool


def _result(request_id: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _json(document: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(status, [("Content-Type", "application/json"), *(headers or [])], json.dumps(document).encode())
