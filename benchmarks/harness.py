"""The local stack for a benchmark: the stand-ins in this process, the function app on a host of its own.

    with BenchStack(wire=True, ceiling="autonomous") as bench:
        bench.wire          # a TableWire in front of Azurite: the app's table traffic goes through it
        bench.base_url, bench.function_key, bench.sign_in("alice@contoso.test")

The host runs in its own process (`python -m local_azure.host`), as the Functions runtime runs a
worker, so the app's CPU is not shared with the benchmark's (`in_process=True` runs it in this one).
With `timers=False` the host runs every
function except the timer triggers (the outbox relay, the stall sweeper), whose reads belong to no
run: `list_runs_cost.py` measures those. Everything listens on loopback, on free ports.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from azure.data.tables import TableClient

from benchmarks.wire import TableWire
from local_azure.host import FunctionsHost
from local_azure.host.signin import sign_in
from local_azure.processes import ManagedProcess, free_port
from local_azure.stack import AUTH_SETTINGS, LocalStack, start_host_process
from shared.adapters.table_store import TableRunStore
from shared.topology import Table

ROOT = Path(__file__).resolve().parents[1]
PLANS = Path(__file__).resolve().parent / "plans.json"
PASSWORD = "Passw0rd!"  # noqa: S105  the local Entra stand-in's fixture users
FUNCTION_KEY = "bench-local-function-key"
AGENT = "a9e77000-0000-4000-8000-0000000000aa"
SUBSCRIPTION = "2b5c3f6e-0000-4000-8000-0000000005b1"
WEB_VMS = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-prod-web/providers/Microsoft.Compute/virtualMachines"
VM_WEB_01 = f"{WEB_VMS}/vm-web-01"
VM_WEB_02 = f"{WEB_VMS}/vm-web-02"
TABLES_CONNECTION = "TablesConnection"


def max_concurrent_calls() -> int:
    """The Service Bus trigger's concurrency per function, from the app's host.json."""
    host = json.loads((ROOT / "host.json").read_text())
    return int(host.get("extensions", {}).get("serviceBus", {}).get("maxConcurrentCalls", 16))


class BenchStack:
    def __init__(self, *, wire: bool = True, timers: bool = True, in_process: bool = False, plans: Path = PLANS,
                 say: Any = None, instances: int = 1, **settings: str) -> None:
        if instances < 1 or (in_process and instances > 1):
            raise ValueError(f"instances: 1 in process, or 1 or more hosts of their own, not {instances}")
        self.use_wire = wire
        self.instances = instances
        self.timers = timers
        self.in_process = in_process
        self.plans = plans
        self.overrides = settings
        self.say = say or (lambda text: None)
        self.stack: LocalStack | None = None
        self.wire: TableWire | None = None
        self.process: ManagedProcess | None = None
        self.more: list[tuple[ManagedProcess, int]] = []  # the instances beside the first: process, port
        self.host: FunctionsHost | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._saved_env: dict[str, str | None] = {}

    # ----- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> BenchStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def start(self) -> BenchStack:
        self._folder = tempfile.TemporaryDirectory(prefix="bench-")
        folder = Path(self._folder.name)
        began = time.perf_counter()
        self.stack = LocalStack(state_dir=folder / "state", start_host=False).start()
        assert self.stack.certificate_authority is not None
        assert self.stack.azurite is not None
        # The benchmark's own clients (sign-in, ARM, Entra) trust the local CA as the app does.
        for name, value in self.stack.certificate_authority.client_environment().items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        if self.use_wire:
            self.wire = TableWire(self.stack.azurite.port).start()
        self.start_host()
        self.say(f"stack up in {time.perf_counter() - began:.1f} s")
        return self

    def app_settings(self) -> dict[str, str]:
        assert self.stack is not None
        values = {**self.stack.settings(), "GATES_RESPONSE_PLANS": str(self.plans),
                  "LOCAL_FUNCTION_KEYS": FUNCTION_KEY, **self.overrides}
        if self.wire is not None:
            values[TABLES_CONNECTION] = self.wire.connection_string
        return values

    def start_host(self) -> None:
        assert self.stack is not None
        assert self._folder is not None
        folder = Path(self._folder.name)
        local_settings = folder / "local.settings.json"
        local_settings.write_text(json.dumps({"IsEncrypted": False, "Values": self.app_settings()}))
        local_settings.chmod(0o600)
        app = "function_app:app" if self.timers else "benchmarks.hostapp:app"
        if self.in_process:
            # In this process: the benchmark can call the app's timer functions (benchmarks.hostapp).
            self.host = FunctionsHost(ROOT, app=app, settings=self.app_settings(), port=self.stack.host_port,
                                      auth_settings=AUTH_SETTINGS).start()
            return
        self.process = start_host_process(local_settings, self.stack.host_port, folder / "host.log", project=ROOT,
                                          app=app)
        # Scaled out: more instances of the app beside the first, sharing every stand-in and the storage,
        # as the platform adds instances under load (each with its own memory, links and timers).
        for instance in range(2, self.instances + 1):
            port = free_port()
            log = folder / f"host-{instance}.log"
            self.more.append((start_host_process(local_settings, port, log, project=ROOT, app=app), port))

    def stop_host(self) -> None:
        if self.host is not None:
            self.host.stop()
            self.host = None
        for process, _ in self.more:
            process.stop()
        self.more = []
        if self.process is not None:
            self.process.stop()
            self.process = None

    def stop(self) -> None:
        self.stop_host()
        if self.wire is not None:
            self.wire.stop()
            self.wire = None
        if self.stack is not None:
            self.stack.stop()
            self.stack = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    # ----- for the benchmark -----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self.stack is not None
        return f"http://127.0.0.1:{self.stack.host_port}"

    @property
    def base_urls(self) -> list[str]:
        """Every instance's address, the first one's first."""
        return [self.base_url, *(f"http://127.0.0.1:{port}" for _, port in self.more)]

    @property
    def host_pids(self) -> list[int]:
        return [process.pid for process in ([self.process] if self.process is not None else [])
                + [process for process, _ in self.more]]

    @property
    def function_key(self) -> str:
        return FUNCTION_KEY

    @property
    def azurite_connection_string(self) -> str:
        """Straight to Azurite, past the wire counter: for seeding and checking, not counted."""
        assert self.stack is not None
        assert self.stack.azurite is not None
        return self.stack.azurite.connection_string

    def sign_in(self, user: str) -> requests.Session:
        return sign_in(self.base_url, user, PASSWORD)

    def host_log(self) -> str:
        return self.process.log_tail() if self.process is not None else ""


def common_alert(rule: str, resource_id: str, alert_id: str, *, fired_at: str | None = None) -> dict[str, Any]:
    """An Azure Monitor alert in the common alert schema (as an action group's webhook posts it)."""
    from local_azure import scenario

    return scenario.common_alert(rule, resource_id, alert_id=alert_id, fired_at=fired_at,
                                 description="benchmark alert")


def store_on(table: Callable[[str], Any]) -> TableRunStore:
    """The app's run store on the clients `table(name)` gives, whichever tables its constructor takes:
    the runs table and, since issue 7, the run index (`index`)."""
    names = {"client": Table.RUNS.value, "index": "runindex"}
    parameters = list(inspect.signature(TableRunStore).parameters)
    return TableRunStore(*(table(names.get(name, name)) for name in parameters))


def run_store(connection_string: str) -> TableRunStore:
    """The app's run store, straight on Azurite (past the wire counter: for checking, not counted)."""
    return store_on(lambda name: TableClient.from_connection_string(connection_string, name))


def runs_in(store: Any) -> list[Any]:
    """Every run in the store, whole (`list_runs` gave runs before issue 7, a page of summaries after)."""
    listed: Any = store.list_runs(None, limit=1_000_000)
    if isinstance(listed, list):
        return listed
    ids = [summary.run_id for summary in listed.runs]
    while listed.continuation:
        listed = store.list_runs(None, limit=1000, continuation=listed.continuation)
        ids += [summary.run_id for summary in listed.runs]
    return [run for run in (store.get_run(run_id) for run_id in ids) if run is not None]


def action(name: str) -> Any:
    """The catalog's spec of action `name` (a dict in code before issue 8, the catalog file after)."""
    from shared.core import catalog

    if hasattr(catalog, "CATALOG"):
        return catalog.CATALOG[name]
    from shared.settings import action_catalog_path

    return catalog.load_catalog(action_catalog_path({}))[name]


def plan_book() -> Any:
    """The benchmarks' response plans (benchmarks/plans.json), read as the app reads its own."""
    from shared.core.plans import load_plan_book

    if len(inspect.signature(load_plan_book).parameters) == 1:
        return load_plan_book(PLANS)  # type: ignore[call-arg,unused-ignore]
    from shared.core.catalog import load_catalog
    from shared.settings import action_catalog_path

    return load_plan_book(PLANS, load_catalog(action_catalog_path({})))
