"""A small app with MCP tool triggers, for the local host's MCP endpoint tests."""

from __future__ import annotations

import json

import azure.functions as func

app = func.FunctionApp()

ADD_PROPERTIES = json.dumps([
    {"propertyName": "a", "propertyType": "integer", "description": "first", "isRequired": True},
    {"propertyName": "b", "propertyType": "integer", "description": "second", "isRequired": True},
])


@app.function_name("add")
@app.mcp_tool_trigger(arg_name="context", tool_name="add", description="Add two numbers.",
                      tool_properties=ADD_PROPERTIES)
def add(context: str) -> str:
    arguments = json.loads(context)["arguments"]
    return str(int(arguments["a"]) + int(arguments["b"]))


@app.function_name("whoami")
@app.mcp_tool_trigger(arg_name="context", tool_name="whoami", description="The context the tool was called with.",
                      tool_properties="[]")
def whoami(context: str) -> str:
    document = json.loads(context)
    headers = {k.lower(): v for k, v in document["transport"]["properties"]["headers"].items()}
    return json.dumps({"name": document["name"], "session": document["sessionid"],
                       "authorization": headers.get("authorization"), "key": headers.get("x-functions-key")})


@app.function_name("broken")
@app.mcp_tool_trigger(arg_name="context", tool_name="broken", description="Always fails.", tool_properties="[]")
def broken(context: str) -> str:
    raise RuntimeError("boom")
