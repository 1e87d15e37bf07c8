"""`FunctionsHost`: the local stand-in for the Azure Functions runtime.

It loads settings the way Core Tools does, imports the app, discovers its functions and drives each
through the trigger the runtime would use; everything is started by `start()` and torn down by `stop()`.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path

from local_azure.host.auth_settings import AuthSettings
from local_azure.host.discovery import DiscoveryError, FunctionSpec, discover, load_app
from local_azure.host.easy_auth import EasyAuth
from local_azure.host.http_trigger import FunctionKeys, HttpDispatcher, HttpListener
from local_azure.host.invocation import Invoker
from local_azure.host.mcp import McpServer
from local_azure.host.servicebus_trigger import ServiceBusListener, ServiceBusOutputs
from local_azure.host.settings import AppSettings, HostConfig, read_local_settings
from local_azure.host.timer_trigger import TimerListener
from local_azure.lifecycle import Startable

LOG = logging.getLogger("local_azure.host")
STOP_TIMEOUT_SECONDS = 5.0


class FunctionsHost(Startable):
    def __init__(
        self,
        project_dir: Path,
        app: str = "function_app:app",
        settings: Mapping[str, str] | None = None,
        local_settings: Path | None = None,
        port: int = 0,
        auth_settings: Path | None = None,
        bind: str = "127.0.0.1",
    ) -> None:
        self.project_dir = Path(project_dir).resolve()
        self.app_reference = app
        values: dict[str, str] = {}
        if local_settings is not None:
            values.update(read_local_settings(Path(local_settings)))
        values.update(settings or {})
        self.settings = AppSettings(values)
        self.config = HostConfig.load(self.project_dir, self.settings.values)
        self._requested_port = port
        self._bind = bind
        self._auth_settings_path = auth_settings
        self._stopping = threading.Event()
        self._http: HttpListener | None = None
        self._service_bus: list[ServiceBusListener] = []
        self._timers: list[TimerListener] = []
        self._outputs = ServiceBusOutputs(self._connection_string)
        self.functions: list[FunctionSpec] = []
        # Keys come from this host's own settings only: another host in the process may have put its keys
        # in os.environ.
        self.keys = FunctionKeys.from_settings(self.settings.values.get("LOCAL_FUNCTION_KEYS"),
                                               self.settings.values.get("LOCAL_MASTER_KEY"))
        self.easy_auth: EasyAuth | None = None
        # The MCP extension's system key (`mcp_extension`), as the host keeps it under its system keys.
        self.mcp_extension_key = self.settings.values.get("LOCAL_MCP_EXTENSION_KEY") or secrets.token_urlsafe(30)
        self.mcp: McpServer | None = None

    # ----- public surface --------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError("the host is not started")
        return self._http.port

    @property
    def base_url(self) -> str:
        return f"http://{self._bind}:{self.port}"

    @property
    def function_key(self) -> str:
        return self.keys.default_function_key

    @property
    def master_key(self) -> str:
        return self.keys.master_key

    def start(self) -> FunctionsHost:
        self.settings.apply()  # before the import: app code may read settings at import time
        try:
            self.functions = discover(load_app(self.project_dir, self.app_reference), self.settings.get)
            self._build()
        except BaseException:
            self._teardown()
            raise
        for listener in self._service_bus:
            listener.start()
        for timer in self._timers:
            timer.start()
        if self._http is not None:
            self._http.start()
        LOG.info("host started: %d functions%s", len(self.functions),
                 f", HTTP on {self.base_url}" if self._http else "")
        for spec in self.functions:
            LOG.info("  %s: %s", spec.name, self._describe(spec))
        return self

    def stop(self) -> None:
        self._teardown()
        LOG.info("host stopped")

    # ----- wiring ----------------------------------------------------------------------------------------
    def _connection_string(self, setting: str) -> str:
        value = self.settings.get(setting)
        if value:
            return value
        if self.settings.get(f"{setting}__fullyQualifiedNamespace"):
            raise DiscoveryError(f"{setting}: identity-based connections (__fullyQualifiedNamespace) need a "
                                 "managed identity; the local host needs a connection string in {setting}")
        raise DiscoveryError(f"connection setting {setting!r} is not set (local.settings.json Values or settings)")

    def _build(self) -> None:
        http_invokers: list[Invoker] = []
        mcp_invokers: list[Invoker] = []
        for spec in self.functions:
            invoker = Invoker(spec, str(self.project_dir), self._outputs.send)
            for output in spec.outputs:
                if output.type == "serviceBus":
                    self._connection_string(str(output.properties.get("connection") or "AzureWebJobsServiceBus"))
            if spec.trigger_type == "serviceBusTrigger":
                self._service_bus.append(ServiceBusListener(
                    invoker, self._connection_string(spec.connection), self.config.service_bus, self._stopping))
            elif spec.trigger_type == "timerTrigger":
                self._timers.append(TimerListener(invoker, self._stopping))
            elif spec.trigger_type == "mcpToolTrigger":
                mcp_invokers.append(invoker)
            else:
                http_invokers.append(invoker)
        if self._auth_settings_path is not None:
            auth = AuthSettings.load(Path(self._auth_settings_path), self.settings.get)
            self.easy_auth = EasyAuth(auth) if auth.enabled else None
        if mcp_invokers:
            mcp = self.config.mcp
            self.mcp = McpServer(mcp_invokers, self.mcp_extension_key, self.keys.master_key,
                                 name=str(mcp.get("serverName") or "functions-mcp"),
                                 version=str(mcp.get("serverVersion") or "1.0.0"),
                                 instructions=str(mcp.get("instructions") or ""),
                                 authorization_level=str((mcp.get("system") or {}).get("webhookAuthorizationLevel")
                                                         or "System"))
        if http_invokers or mcp_invokers or self.easy_auth is not None:
            dispatcher = HttpDispatcher(http_invokers, self.config.route_prefix, self.keys, self.easy_auth, self.mcp)
            self._http = HttpListener(dispatcher, self._bind, self._requested_port)

    def _describe(self, spec: FunctionSpec) -> str:
        if spec.trigger_type == "httpTrigger":
            prefix = f"/{self.config.route_prefix}" if self.config.route_prefix else ""
            return f"[{','.join(spec.methods)}] {self.base_url}{prefix}/{spec.route} (authLevel {spec.auth_level})"
        if spec.trigger_type == "serviceBusTrigger":
            return f"serviceBusTrigger queue {spec.queue_name!r}"
        if spec.trigger_type == "mcpToolTrigger":
            tool = spec.trigger.properties.get("toolName")
            return f"mcpToolTrigger tool {tool!r} at {self.base_url}/runtime/webhooks/mcp"
        return f"timerTrigger {spec.schedule!r}{' runOnStartup' if spec.run_on_startup else ''}"

    def _teardown(self) -> None:
        self._stopping.set()
        if self._http is not None:
            self._http.stop()
        for listener in self._service_bus:
            listener.join(STOP_TIMEOUT_SECONDS)
        for timer in self._timers:
            timer.join(STOP_TIMEOUT_SECONDS)
        self._outputs.close()
        self.settings.restore()
