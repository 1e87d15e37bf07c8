"""The MCP extension's endpoint on the local host, driven by the real `mcp` Python SDK client over
streamable HTTP: the system key, tools/list from the triggers' properties, tools/call into the function
with the ToolInvocationContext the extension passes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from local_azure.host import FunctionsHost
from tests.local_azure.sample_app.harness import SAMPLE_APP

pytestmark = pytest.mark.timeout(60)
MCP_KEY = "sample-mcp-extension-key"


@pytest.fixture(scope="module")
def host() -> Iterator[FunctionsHost]:
    running = FunctionsHost(SAMPLE_APP, app="mcp_app:app", settings={"LOCAL_MCP_EXTENSION_KEY": MCP_KEY,
                                                                     "LOCAL_MASTER_KEY": "sample-master"})
    running.start()
    try:
        yield running
    finally:
        running.stop()


def with_session(host: FunctionsHost, work: Any, headers: dict[str, str] | None = None) -> Any:
    async def run() -> Any:
        client = create_mcp_http_client(headers={"x-functions-key": MCP_KEY, **(headers or {})})
        async with client, streamable_http_client(f"{host.base_url}/runtime/webhooks/mcp", http_client=client) as (
                read, write), ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)
    return asyncio.run(run())


def test_the_tools_are_listed_with_input_schemas_from_their_properties(host: FunctionsHost) -> None:
    async def work(session: ClientSession) -> Any:
        return await session.list_tools()
    tools = {t.name: t for t in with_session(host, work).tools}
    assert set(tools) == {"add", "whoami", "broken"}
    assert tools["add"].input_schema["required"] == ["a", "b"]
    assert tools["add"].input_schema["properties"]["a"]["type"] == "integer"


def test_a_tool_call_runs_the_function_and_answers_its_text(host: FunctionsHost) -> None:
    async def work(session: ClientSession) -> Any:
        return await session.call_tool("add", {"a": 2, "b": 40})
    result = with_session(host, work)
    assert result.is_error is False
    assert result.content[0].text == "42"


def test_the_function_sees_the_callers_headers_and_the_session_but_never_the_key(host: FunctionsHost) -> None:
    async def work(session: ClientSession) -> Any:
        return await session.call_tool("whoami", {})
    seen = json.loads(with_session(host, work, {"Authorization": "Bearer agent-token"}).content[0].text)
    assert seen["name"] == "whoami"
    assert seen["authorization"] == "Bearer agent-token"
    assert seen["session"]
    assert seen["key"] is None


def test_a_failing_function_is_a_tool_error(host: FunctionsHost) -> None:
    async def work(session: ClientSession) -> Any:
        return await session.call_tool("broken", {})
    assert with_session(host, work).is_error is True


def test_a_missing_required_property_is_refused_before_the_function_runs(host: FunctionsHost) -> None:
    response = requests.post(f"{host.base_url}/runtime/webhooks/mcp", timeout=10,
                             headers={"x-functions-key": MCP_KEY, "Accept": "application/json, text/event-stream"},
                             json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                   "params": {"name": "add", "arguments": {"a": 1}}})
    assert response.json()["error"]["code"] == -32602
    assert "b" in response.json()["error"]["message"]


@pytest.mark.parametrize("key", [None, "wrong", "sample-function-key"])
def test_the_endpoint_needs_the_mcp_extension_system_key(host: FunctionsHost, key: str | None) -> None:
    headers = {"x-functions-key": key} if key else {}
    response = requests.post(f"{host.base_url}/runtime/webhooks/mcp", timeout=10, headers=headers,
                             json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 401


def test_the_master_key_opens_it_too(host: FunctionsHost) -> None:
    response = requests.post(f"{host.base_url}/runtime/webhooks/mcp", timeout=10,
                             headers={"x-functions-key": "sample-master"},
                             json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 200


def test_an_anonymous_webhook_level_leaves_the_endpoint_to_easy_auth(tmp_path) -> None:
    import shutil
    project = tmp_path / "app"
    shutil.copytree(SAMPLE_APP, project)
    (project / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {
        "mcp": {"system": {"webhookAuthorizationLevel": "Anonymous"}}}}))
    with FunctionsHost(project, app="mcp_app:app") as running:
        response = requests.post(f"{running.base_url}/runtime/webhooks/mcp", timeout=10,
                                 json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 200
