"""The MCP tools as the Functions MCP extension calls them: a JSON context with the arguments and the
transport's headers, the agent's bearer token among them."""

from __future__ import annotations

import json
from typing import Any

from shared.core.model import RequestKind, RunState
from tests.agents import OTHER_AGENT_ID, agent_pipeline, agent_token, plan
from tests.pipeline import ALICE, Pipeline


def call(p: Pipeline, tool: str, arguments: dict[str, Any], *, token: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    context = {"name": tool, "arguments": arguments, "sessionid": "s1",
               "transport": {"name": "http-streamable", "properties": {"headers": headers}}}
    return json.loads(p.functions[f"mcp_{tool}"](json.dumps(context)))


def test_list_actions_names_each_action_with_its_kind_permissions_and_parameter_schema() -> None:
    actions = {a["name"]: a for a in call(agent_pipeline(), "list_actions", {}, token=agent_token())["actions"]}
    assert actions["vmss.set_capacity"]["kind"] == "write"
    assert actions["vmss.set_capacity"]["permissions"] == ["Microsoft.Compute/virtualMachineScaleSets/write"]
    assert actions["vmss.set_capacity"]["parameters"]["properties"]["capacity"]["maximum"] == 1000


def test_a_tool_call_without_the_agents_token_is_refused() -> None:
    p = agent_pipeline()
    assert call(p, "propose_plan", plan())["status"] == 401
    assert call(p, "list_actions", {})["status"] == 401
    assert p.store.all_runs() == []


def test_propose_then_get_run_through_the_tools() -> None:
    p = agent_pipeline()
    proposed = call(p, "propose_plan", plan(), token=agent_token())
    assert proposed["status"] == 202
    assert proposed["waiting_for"]["asked_of"] == [ALICE.upn]
    p.drain()
    p.decide(RequestKind.CONSENT, "deny", ALICE)
    run = call(p, "get_run", {"run_id": proposed["run_id"]}, token=agent_token())
    assert run["state"] == "denied"
    assert call(p, "get_run", {"run_id": proposed["run_id"]}, token=agent_token(OTHER_AGENT_ID))["status"] == 404


def test_check_plan_through_the_tool_creates_nothing() -> None:
    p = agent_pipeline()
    answer = call(p, "check_plan", plan(capacity=9999), token=agent_token())
    assert (answer["status"], answer["field"]) == (400, "steps[1].parameters")
    assert call(p, "check_plan", plan(), token=agent_token())["decision"] == "consent"
    assert p.store.all_runs() == []


def test_cancel_run_through_the_tool() -> None:
    p = agent_pipeline()
    proposed = call(p, "propose_plan", plan(), token=agent_token())
    answer = call(p, "cancel_run", {"run_id": proposed["run_id"], "reason": "resolved"}, token=agent_token())
    assert answer["state"] == "cancelled"
    assert p.run().state is RunState.CANCELLED
