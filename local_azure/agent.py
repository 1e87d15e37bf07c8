"""An agent, as it would talk to SRE Gates: its own Entra token (client credentials, through MSAL), the
MCP tools through the real `mcp` client over streamable HTTP, or the plan API over plain HTTP.

Used by the demo and the end-to-end tests; never imported by the function app."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import msal
import requests

MCP_PATH = "/runtime/webhooks/mcp"


def client_credentials_token(authority: str, client_id: str, secret: str, scope: str) -> str:
    """An application token for `scope` (e.g. api://sre-gates/.default), as any Entra client gets one."""
    app = msal.ConfidentialClientApplication(client_id, client_credential=secret, authority=authority,
                                             instance_discovery=False)
    result = app.acquire_token_for_client(scopes=[scope])
    if "access_token" not in result:
        raise RuntimeError(f"no token: {result.get('error')}: {result.get('error_description')}")
    return str(result["access_token"])


@dataclass
class Agent:
    base_url: str
    token: str
    mcp_key: str

    # ----- MCP -------------------------------------------------------------------------------------------
    def tool(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call one MCP tool in a session of its own; the tool's JSON text, parsed."""
        return asyncio.run(self._tools([(name, arguments or {})]))[0]

    def tools(self) -> list[str]:
        return asyncio.run(self._list())

    async def _session(self) -> Any:
        from mcp.shared._httpx_utils import create_mcp_http_client
        return create_mcp_http_client(headers={"x-functions-key": self.mcp_key,
                                               "Authorization": f"Bearer {self.token}"})

    async def _tools(self, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client
        answers: list[dict[str, Any]] = []
        async with await self._session() as client, \
                streamable_http_client(f"{self.base_url}{MCP_PATH}", http_client=client) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            for name, arguments in calls:
                result = await session.call_tool(name, arguments)
                text = result.content[0].text if result.content else "{}"
                answers.append({"is_error": True, "text": text} if result.is_error else json.loads(text))
        return answers

    async def _list(self) -> list[str]:
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client
        async with await self._session() as client, \
                streamable_http_client(f"{self.base_url}{MCP_PATH}", http_client=client) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            return [t.name for t in (await session.list_tools()).tools]

    # ----- plain HTTP ------------------------------------------------------------------------------------
    def post(self, path: str, document: Any, token: str | None = None) -> requests.Response:
        return requests.post(f"{self.base_url}{path}", json=document, timeout=30,
                             headers={"Authorization": f"Bearer {token or self.token}"})

    def get_run(self, run_id: str, token: str | None = None) -> requests.Response:
        return requests.get(f"{self.base_url}/api/runs/{run_id}", timeout=30,
                            headers={"Authorization": f"Bearer {token or self.token}",
                                     "Accept": "application/json"})
