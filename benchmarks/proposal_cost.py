"""What a plan an agent proposes costs in Table Storage requests and bus sends, against Azurite.

    .venv/bin/python benchmarks/proposal_cost.py [--proposals 50]

Counts the requests on the wire (azure-core's per-request hook) for: a new proposal (idempotency row,
run, index, consent request opened so the answer carries the link), the same proposal repeated, a check
(nothing written), and the agent reading its run back; with median latencies. The token check is the
app's own (RS256 against a key in memory: the JWKS fetch is cached by PyJWT in Azure).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from azure.data.tables import TableServiceClient

from gates.agent_auth import AgentCaller
from gates.proposals import check_plan, get_agent_run, propose_plan
from local_azure.azurite import AzuriteTables
from shared.adapters.correlation_cache import RememberedCorrelations
from shared.adapters.sealing import AesGcmSealer
from shared.adapters.table_store import TableCorrelationStore, TableRejectedAlertStore, TableRunStore, open_tables
from shared.core.model import Mode
from shared.core.plans import parse_plan_book
from shared.core.requests import Timeouts
from shared.services import Policy, Services, SystemClock
from shared.topology import Table
from tests.agents import AGENT_ID, agents_book, plan
from tests.fakes import (
    FakeAlertStatus,
    FakeArm,
    FakeBus,
    FakeLimitStore,
    FakeNotifier,
    FakeSwitchStore,
    FakeTokenBroker,
)
from tests.pipeline import CATALOG


class Counter:
    def __init__(self) -> None:
        self.requests = 0

    def __call__(self, request: Any) -> None:
        self.requests += 1


def services(connection_string: str, counter: Counter, bus: FakeBus) -> Services:
    tables = open_tables(TableServiceClient.from_connection_string(connection_string, raw_request_hook=counter))
    return Services(
        runs=TableRunStore(tables[Table.RUNS], tables[Table.RUN_INDEX]),
        correlations=RememberedCorrelations(TableCorrelationStore(tables[Table.CORRELATIONS]), SystemClock()),
        rejected_alerts=TableRejectedAlertStore(tables[Table.REJECTED_ALERTS]), alert_status=FakeAlertStatus(),
        limits=FakeLimitStore(), bus=bus, arm=FakeArm(),
        tokens=FakeTokenBroker(), notifier=FakeNotifier(), sealer=AesGcmSealer(os.urandom(32)),
        switches=FakeSwitchStore(),
        policy=Policy(plans=parse_plan_book(agents_book(), "plans.json", CATALOG), ceiling=Mode.REVIEW,
                      timeouts=Timeouts(consent=dt.timedelta(minutes=30), credentials=dt.timedelta(minutes=15)),
                      cooldown=dt.timedelta(hours=3), public_base_url="https://gates.example", form_key=b"k"))


def measure(label: str, counter: Counter, bus: FakeBus, operations: list[Any]) -> None:
    requests: list[int] = []
    sends: list[int] = []
    seconds: list[float] = []
    for operation in operations:
        before, sent = counter.requests, len(bus.sent)
        began = time.perf_counter()
        operation()
        seconds.append(time.perf_counter() - began)
        requests.append(counter.requests - before)
        sends.append(len(bus.sent) - sent)
    print(f"{label:<28} table requests {statistics.median(requests):>4.0f} (max {max(requests)}), "
          f"messages {statistics.median(sends):>3.0f}, median {statistics.median(seconds) * 1000:6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--proposals", type=int, default=50)
    args = parser.parse_args()
    agent = AgentCaller(AGENT_ID)
    with AzuriteTables() as azurite:
        counter, bus = Counter(), FakeBus()
        s = services(azurite.connection_string, counter, bus)
        keys = [f"bench-{i}" for i in range(args.proposals)]
        answers: list[dict[str, Any]] = []
        measure("new proposal (review)", counter, bus,
                [lambda k=k: answers.append(propose_plan(s, agent, plan(key=k)).body) for k in keys])
        measure("same proposal again", counter, bus, [lambda k=k: propose_plan(s, agent, plan(key=k)) for k in keys])
        measure("check_plan", counter, bus, [lambda: check_plan(s, agent, plan()) for _ in keys])
        measure("get_run (the agent)", counter, bus,
                [lambda a=a: get_agent_run(s, agent, a["run_id"]) for a in answers])


if __name__ == "__main__":
    main()
