"""MCP tools, registered with the Functions MCP extension's tool trigger: in Azure the app is a remote MCP
server at `/runtime/webhooks/mcp` (streamable HTTP, the `mcp_extension` system key, Easy Auth in front).

The extension hands each call over as a JSON context (`name`, `arguments`, `transport.properties.headers`);
the agent's own bearer token rides in those headers and is validated exactly as `POST /api/plans`
validates it. Every tool answers JSON text: the same answers the HTTP API gives, with the approval link
when a person must decide."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from gates.agent_auth import AgentCaller, AgentRefused, authenticate_agent
from gates.proposals import (
    Answer,
    cancel_agent_run,
    check_plan,
    get_agent_run,
    list_actions,
    propose_plan,
)
from shared.services import Services, ServicesProvider


def _property(name: str, kind: str, description: str, *, required: bool = False, array: bool = False) -> dict[str, Any]:
    return {"propertyName": name, "propertyType": kind, "description": description, "isRequired": required,
            "isArray": array}


PLAN_PROPERTIES = json.dumps([
    _property("resource_id", "string", "The Azure resource id the plan acts on", required=True),
    _property("steps", "object", "Ordered steps: {\"action\": <catalog name>, \"parameters\": {...}}; "
              "list_actions names the actions", required=True, array=True),
    _property("rationale", "string", "Why the agent proposes this plan (shown to the people asked)", required=True),
    _property("idempotency_key", "string", "The same key returns the same run; never reuse it for another plan",
              required=True),
    _property("reference", "string", "An alert or incident reference, if any"),
    _property("requester", "object", "The person who prompted the agent: {\"object_id\": <Entra object id>, "
              "\"upn\": <sign-in name>}"),
])
RUN_PROPERTIES = json.dumps([_property("run_id", "string", "The run id propose_plan answered", required=True)])
CANCEL_PROPERTIES = json.dumps([
    _property("run_id", "string", "The run id propose_plan answered", required=True),
    _property("reason", "string", "Why the agent withdraws its plan"),
])


def _context(raw: str) -> dict[str, Any]:
    try:
        context = json.loads(raw)
    except ValueError:
        return {}
    return context if isinstance(context, dict) else {}


def _authorization(context: dict[str, Any]) -> str:
    transport = context.get("transport") or {}
    headers = (transport.get("properties") or {}).get("headers") or {} if isinstance(transport, dict) else {}
    if not isinstance(headers, dict):
        return ""
    return next((str(v) for k, v in headers.items() if str(k).lower() == "authorization"), "")


def _text(answer: Answer) -> str:
    return json.dumps({"status": answer.status, **answer.body})


def call_tool(services: Services, raw_context: str, tool: str) -> str:
    """One tool call: who the agent is, then the same operation the HTTP API performs."""
    context = _context(raw_context)
    arguments = context.get("arguments") or {}
    if not isinstance(arguments, dict):
        arguments = {}
    # Every tool, the catalog included, answers only an agent with its own valid token.
    try:
        agent = authenticate_agent(services, _authorization(context))
    except AgentRefused as refusal:
        return _text(Answer(403 if refusal.forbidden else 401, {"message": refusal.reason}))
    return _text(_dispatch(services, agent, tool, arguments))


def _dispatch(services: Services, agent: AgentCaller, tool: str, arguments: dict[str, Any]) -> Answer:
    if tool == "list_actions":
        return list_actions(services)
    if tool in ("check_plan", "propose_plan"):
        document = {k: v for k, v in arguments.items() if v is not None}
        return check_plan(services, agent, document) if tool == "check_plan" else \
            propose_plan(services, agent, document)
    run_id = str(arguments.get("run_id", ""))
    if tool == "get_run":
        return get_agent_run(services, agent, run_id)
    return cancel_agent_run(services, agent, run_id, str(arguments.get("reason") or ""))


TOOLS: tuple[tuple[str, str, str], ...] = (
    ("list_actions", "The actions a plan may use, with their kind (read or write), the ARM permission each needs "
                     "and its parameters.", "[]"),
    ("check_plan", "What policy would do with this plan - allow, ask consent, need credentials, or refuse, and "
                   "why - creating nothing.", PLAN_PROPERTIES),
    ("propose_plan", "Propose a plan. SRE Gates decides: it may ask a person for consent or for credentials; the "
                     "answer carries the run id, its status URL and, when a person must decide, their link.",
     PLAN_PROPERTIES),
    ("get_run", "A run this agent proposed: its state, each step's outcome, the decisions and their reasons, "
                "and the approval link while a person is asked.", RUN_PROPERTIES),
    ("cancel_run", "Withdraw a plan this agent proposed while a person is still being asked.", CANCEL_PROPERTIES),
)


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()
    for name, description, properties in TOOLS:
        _register(bp, services, name, description, properties)
    return bp


def _register(bp: func.Blueprint, services: ServicesProvider, name: str, description: str, properties: str) -> None:
    def tool(context: str) -> str:
        return call_tool(services(), context, name)

    tool.__name__ = f"mcp_{name}"
    bp.function_name(f"mcp_{name}")(bp.mcp_tool_trigger(arg_name="context", tool_name=name, description=description,
                                                         tool_properties=properties)(tool))
