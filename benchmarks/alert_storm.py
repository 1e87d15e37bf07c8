"""An alert storm: many alerts of one rule over 100 resources, through the queue and through the HTTP intake.

    .venv/bin/python benchmarks/alert_storm.py [--alerts 10000] [--resources 100] [--raw-inserts 2000] [--wire]
                                               [--paths queue,http] [--http-clients 16] [--instances 2]
    .venv/bin/python benchmarks/alert_storm.py --alerts 2000        # a quick run

The app runs on its own local host (all functions, timers included) against the Service Bus stand-in
and Azurite. Each path gets fresh resources, so each must make exactly one run per resource (review
plan: every run waits for consent, and every later alert of the rule joins it).

  queue: the alerts are put on the `alerts` queue (batches of 100) as fast as the SDK sends;
  HTTP:  they are posted to POST /api/alerts by as many clients as the trigger's maxConcurrentCalls (or
         `--http-clients`: an HTTP trigger is not bound by it; the raw rate is then measured at that many
         threads too), from a process of their own (in this one, they would slow the Service Bus stand-in
         the intake sends to).

Ingest rate = alerts / (first send → the `alerts` queue empty, every message handled and completed).
The HTTP path also prints a post's latency (p50, p95, p99, as its clients saw it): an alert that fired just
now is sent while its status row is written, so a post waits for the slower of the two, not for both.
CPU per alert is printed by process (the app's host, Azurite, this process: the stand-ins and the
senders): on a shared machine it moves far less than the rates do.
Before each path, Azurite's raw conditional-insert rate is measured in the same run: `create_entity`
with the SDK from as many threads as host.json's maxConcurrentCalls, sharing one client, entities of
a run's size. Quoted in issue 7: 16-22 alerts/s against 230-239 raw; target ≥ 50 % of raw.
`--instances N` runs the app scaled out: N hosts, each with every function, sharing the stand-ins and Azurite,
the posts spread over them; each path must still make exactly one run per resource. On a 2-core machine
it is slower than one host (the cores are what both share), so the default is one.
`--wire` puts the app's table traffic through the counting proxy and prints requests per alert
(the proxy costs CPU on this machine, so the rate is lower with it).
The paths share one Azurite, and every alert's status row is in one partition: Azurite scans a partition
for each row of a transaction, so the HTTP path, run after the queue path, writes its rows into a partition
of 10,000 and is slower than alone (`--paths http`); the real service's cost does not depend on it.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests
from azure.data.tables import TableServiceClient
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from benchmarks.harness import WEB_VMS, BenchStack, common_alert, max_concurrent_calls, run_store, runs_in
from benchmarks.wire import format_counts
from shared.adapters.table_store import TableRunStore
from shared.topology import Queue

RULE = "vm-not-responding"
RUN_SIZED_DATA = "x" * 2500  # a run entity's Data (its JSON) is about this long
LOAD_URL, LOAD_KEY = "STORM_LOAD_URL", "STORM_LOAD_FUNCTION_KEY"  # the load process's target and key
MIN_RATE = 2.0  # alerts/s below which a path is given up as stuck (bounds the run's time)


def raw_insert_rate(connection_string: str, threads: int, count: int) -> float:
    """Conditional inserts (create: fails if the entity exists) per second, `threads` at a time."""
    service = TableServiceClient.from_connection_string(connection_string)
    table = service.create_table_if_not_exists("benchrawinserts")
    prefix = uuid.uuid4().hex[:8]
    table.create_entity({"PartitionKey": f"{prefix}-warm", "RowKey": "run", "Data": RUN_SIZED_DATA})

    def insert(index: int) -> None:
        table.create_entity({"PartitionKey": f"{prefix}-{index:06d}", "RowKey": "run", "State": "running",
                             "Data": RUN_SIZED_DATA})

    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(insert, range(count)))
    return count / (time.perf_counter() - began)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processes(bench: BenchStack) -> dict[str, int]:
    assert bench.stack is not None
    assert bench.stack.azurite is not None
    hosts = bench.host_pids
    named = {"host": hosts[0]} if len(hosts) == 1 else {f"host {index}": pid for index, pid in enumerate(hosts, 1)}
    return {**named, "Azurite": bench.stack.azurite.pid, "stand-ins + senders": os.getpid()}


def alerts_for(resources: list[str], count: int, tag: str) -> list[dict[str, Any]]:
    fired = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return [common_alert(RULE, resources[index % len(resources)], f"storm-{tag}-{index:06d}-{uuid.uuid4().hex[:6]}",
                         fired_at=fired) for index in range(count)]


def send_to_queue(connection_string: str, alerts: list[dict[str, Any]]) -> float:
    began = time.perf_counter()
    with ServiceBusClient.from_connection_string(connection_string) as client, \
            client.get_queue_sender(Queue.ALERTS.value) as sender:
        for start in range(0, len(alerts), 100):
            batch = sender.create_message_batch()
            for alert in alerts[start:start + 100]:
                essentials = alert["data"]["essentials"]
                batch.add_message(ServiceBusMessage(json.dumps(alert), content_type="application/json",
                                                    message_id=str(essentials["alertId"])[-128:]))
            sender.send_messages(batch)
    return time.perf_counter() - began


def post_to_intake(bench: BenchStack, alerts: list[dict[str, Any]],
                   clients: int) -> tuple[float, float, float, dict[str, float]]:
    """The posts come from a process of their own (`_post_load`): sharing this one's interpreter, the
    clients' threads would slow the Service Bus stand-in the intake sends to, which a real load does not.
    Its bodies are read and encoded before the clock starts, when it is told to go. When it was told to go
    (perf_counter), the seconds the posting took, the CPU seconds the load used and the posts' latency
    percentiles (seconds, by "50", "95", "99")."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as bodies:
        bodies.writelines(json.dumps(alert) + "\n" for alert in alerts)
    # The function key goes in the environment, not in an argument any process on the machine can list.
    load = subprocess.Popen([sys.executable, __file__, "--post-load", bodies.name, "--clients", str(clients)],  # noqa: S603
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, LOAD_URL: " ".join(bench.base_urls), LOAD_KEY: bench.function_key})
    try:
        assert load.stdin is not None
        assert load.stdout is not None
        if load.stdout.readline().strip() != "ready":
            raise RuntimeError("the load process did not start")
        began = time.perf_counter()
        load.stdin.write("go\n")
        load.stdin.flush()
        answer = load.stdout.readline()
        if not answer:
            raise RuntimeError(f"the load process ended without its figures (exit {load.wait(timeout=60)})")
        result = json.loads(answer)
        load.wait(timeout=60)
    finally:
        if load.poll() is None:
            load.kill()
        os.unlink(bodies.name)
    if result["statuses"] != {"202": len(alerts)}:
        print(f"  the intake answered {result['statuses']}")
    return began, float(result["seconds"]), float(result["cpu"]), dict(result["latency"])


def _post_load(path: str, clients: int) -> None:
    """The load process: each client posts on a kept-alive connection of its own, bodies encoded beforehand.
    With more than one instance, the clients are spread over them in turn (as the platform's front end
    spreads connections)."""
    local = threading.local()
    addresses = [urlsplit(url) for url in os.environ[LOAD_URL].split()]
    next_address = itertools.count()
    headers = {"x-functions-key": os.environ[LOAD_KEY], "Content-Type": "application/json"}
    bodies = [line.encode() for line in Path(path).read_text().splitlines()]

    latencies: list[float] = []

    def post(body: bytes) -> int:
        began = time.perf_counter()
        try:
            return _post(body)
        finally:
            latencies.append(time.perf_counter() - began)  # list.append is atomic: no lock needed

    def _post(body: bytes) -> int:
        for attempt in (1, 2):
            connection = getattr(local, "connection", None)
            if connection is None:
                if not hasattr(local, "address"):
                    local.address = addresses[next(next_address) % len(addresses)]
                connection = local.connection = http.client.HTTPConnection(local.address.hostname,
                                                                           local.address.port, timeout=60)
            try:
                connection.request("POST", "/api/alerts", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                return response.status
            except (ConnectionError, http.client.HTTPException):
                connection.close()
                local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    with ThreadPoolExecutor(clients) as pool:
        print("ready", flush=True)
        sys.stdin.readline()
        cpu_before = time.process_time()
        began = time.perf_counter()
        statuses = Counter(str(status) for status in pool.map(post, bodies))
        seconds = time.perf_counter() - began
    latencies.sort()
    percentiles = {str(p): latencies[min(len(latencies) - 1, len(latencies) * p // 100)] for p in (50, 95, 99)}
    print(json.dumps({"seconds": seconds, "statuses": statuses, "cpu": time.process_time() - cpu_before,
                      "latency": percentiles}), flush=True)


def wait_until_handled(bench: BenchStack, alerts: int, began: float) -> float:
    """Until the alerts queue holds nothing (every message handled and completed); the seconds since `began`."""
    assert bench.stack is not None
    service_bus = bench.stack.service_bus
    deadline = began + 120 + alerts / MIN_RATE
    while service_bus.queue_depth(Queue.ALERTS.value) > 0:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{service_bus.queue_depth(Queue.ALERTS.value)} alerts still queued after "
                               f"{time.perf_counter() - began:.0f} s")
        time.sleep(0.1)
    return time.perf_counter() - began


def storm(bench: BenchStack, store: TableRunStore, path: str, alerts: int, resources: int, concurrency: int,
          raw_inserts: int) -> None:
    raw = raw_insert_rate(bench.azurite_connection_string, concurrency, raw_inserts)
    names = [f"{WEB_VMS}/vm-storm-{path}-{index:03d}" for index in range(resources)]
    documents = alerts_for(names, alerts, path)
    mark = bench.wire.mark() if bench.wire is not None else 0
    assert bench.stack is not None
    dead_before = bench.stack.service_bus.dead_letter_depth(Queue.ALERTS.value)
    watched = processes(bench)
    cpu_before = {name: cpu_seconds(pid) for name, pid in watched.items()}
    began = time.perf_counter()
    if path == "queue":
        sending = send_to_queue(bench.stack.service_bus.connection_string, documents)
    else:
        began, sending, load_cpu, latency = post_to_intake(bench, documents, concurrency)
    seconds = wait_until_handled(bench, alerts, began)
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in watched.items()}
    if path == "http":
        cpu["HTTP load"] = load_cpu

    wanted = {name.lower() for name in names}
    runs = [run for run in runs_in(store) if run.resource_id.lower() in wanted]
    per_resource = Counter(run.resource_id.lower() for run in runs)
    recorded = sum(len(run.alert_ids) for run in runs)
    rate = alerts / seconds
    print(f"\nthrough the {'queue (Service Bus)' if path == 'queue' else 'HTTP intake (POST /api/alerts)'}: "
          f"{alerts} alerts over {resources} resources, rule {RULE}")
    one_each = len(per_resource) == resources and set(per_resource.values()) == {1}
    print(f"  runs created: {len(runs)} (exactly one per resource: {one_each}; "
          f"most on one resource {max(per_resource.values(), default=0)})")
    dead = bench.stack.service_bus.dead_letter_depth(Queue.ALERTS.value) - dead_before
    print(f"  alerts merged into an open run: {alerts - dead - len(runs)} (handled, less runs created); "
          f"alert ids the runs keep: {recorded} of {alerts}; dead-lettered: {dead}")
    print(f"  {'sent' if path == 'queue' else 'posted (202)'} in {sending:.1f} s; all handled in {seconds:.1f} s")
    print(f"  ingest rate: {rate:.1f} alerts/s")
    if path == "http":
        print(f"  concurrent posts: {concurrency}; a post's latency p50 {latency['50'] * 1000:.1f} ms, "
              f"p95 {latency['95'] * 1000:.1f} ms, p99 {latency['99'] * 1000:.1f} ms")
    print(f"  Azurite raw conditional inserts, {concurrency} threads, same run: {raw:.1f} /s")
    print(f"  ingest / raw: {rate / raw * 100:.1f} %   (target ≥ 50 %)")
    print("  CPU per alert: " + ", ".join(f"{name} {used / alerts * 1000:.1f} ms" for name, used in cpu.items()))
    if bench.wire is not None:
        traffic = bench.wire.since(mark)
        print(f"  table requests: {len(traffic)}, {len(traffic) / alerts:.2f} per alert")
        for line in format_counts(traffic, indent="    "):
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--resources", type=int, default=100)
    parser.add_argument("--raw-inserts", type=int, default=2000, help="inserts timed for the raw rate")
    parser.add_argument("--paths", default="queue,http", help="queue, http or both (comma-separated)")
    parser.add_argument("--wire", action="store_true", help="count the app's table requests on the wire")
    parser.add_argument("--instances", type=int, default=1,
                        help="instances of the host, scaled out: each runs every function, all share the storage")
    parser.add_argument("--http-clients", type=int, default=0,
                        help="concurrent posts on the HTTP path, and the raw rate's threads for it (default: "
                             "host.json's maxConcurrentCalls; an HTTP trigger is not bound by it)")
    # The HTTP path's load process (post_to_intake starts it): not for use by hand.
    parser.add_argument("--post-load", help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.post_load:
        _post_load(args.post_load, args.clients)
        return
    concurrency = max_concurrent_calls()

    with BenchStack(wire=args.wire, instances=args.instances) as bench:
        store = run_store(bench.azurite_connection_string)
        # An alert to each instance first: each builds its services and opens its links before the clock starts.
        for index, url in enumerate(bench.base_urls):
            warm = common_alert(RULE, f"{WEB_VMS}/vm-storm-warm-up-{index}", uuid.uuid4().hex)
            requests.post(f"{url}/api/alerts", json=warm, headers={"x-functions-key": bench.function_key},
                          timeout=60).raise_for_status()
        wait_until_handled(bench, 1, time.perf_counter())
        hosts = ("the host runs every function" if args.instances == 1 else
                 f"{args.instances} instances of the host, each runs every function (scaled out)")
        print(f"alert storm: host.json maxConcurrentCalls {concurrency} per instance; {hosts}")
        for path in [p.strip() for p in args.paths.split(",") if p.strip()]:
            if path not in ("queue", "http"):
                raise SystemExit(f"--paths: unknown path {path!r}")
            clients = (args.http_clients or concurrency) if path == "http" else concurrency
            storm(bench, store, path, args.alerts, args.resources, clients, args.raw_inserts)


if __name__ == "__main__":
    main()
