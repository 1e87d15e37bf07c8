"""What reading runs costs as history grows: requests on the wire and seconds, at 1, 10,000 and 100,000
finished runs.

    .venv/bin/python benchmarks/list_runs_cost.py [--counts 1,10000] [--workers 2] [--threads 8] [--stalled 600]
    .venv/bin/python benchmarks/list_runs_cost.py --counts 1,10000,100000     # the issue's three counts

100,000 is not the default only because seeding it takes minutes: here ~320 runs/s at every count,
~7.5 min for the three counts and the stalled sweep (~5 of them seeding), ~2 min by default. The
finished runs are spread over time as a busy quarter would leave them, one every 86.4 s (1,000 a day)
back from `HISTORY_ENDS`: 10,000 span 10 days, 100,000 span 100. The run index keeps ended runs in a partition per
day (shared/adapters/table_store.py), so no partition holds more than a day's runs, each twice (2,000
rows here), however long the history. That is what makes 100,000 reachable on Azurite (3.35, LokiJS),
which finds an entity by its PartitionKey and then scans that partition for the RowKey on every write:
while the index was one partition, seeding slowed with the entries already there (batches of 100 into one
partition: 4,100 rows/s at 5,000 rows, 1,100 at 15,000, 230 at 30,000), and 100,000 runs (200,000
entries) were out of reach. Azurite's queries still go over the whole table (it filters every entity of
the table, then sorts what matched), so its seconds grow with the table where the service's would not;
the requests are what the service would be sent.

Measured at each count, through the counting proxy (benchmarks/wire.py):
  GET /api/runs?state=succeeded   a page of 100, as a signed-in reader asks for it;
  the stall sweeper               its timer function (`stall_sweeper`), which reads the open runs;
  the outbox relay                its timer function (`outbox_relay`; `resend_relay` since issue 7),
                                  which reads what waits to be sent.
Then (`--stalled`, default 600: more than the 500 a state the sweeper reads today) that many open
runs whose consent message was lost are seeded, the sweeper runs once, and the benchmark counts the
runs it moved on: every one of them, if the sweeper sees every open run.
The host runs in this process without its timer schedule; the benchmark calls the two timer functions
itself, once per count.

Finished runs are seeded straight into Azurite (not counted), in the app's own store format: what
`TableRunStore.create_run` writes for a run that has succeeded, with the audit lines its start wrote
(and, since issue 7, what `mark_ended` writes to the run index), is captured and sent as plain `$batch`
requests by a lean client (benchmarks/seeding.py), from `--workers` processes x `--threads` threads;
`--sdk-seeding` writes through the store on the SDK instead (80-140 runs/s here). Quoted in issue 7: 100 requests and
9.5 s at 10,000; target ≤ 2 requests a page at 10,000 and 100,000. The page of 100 newest first lies
within the newest day here (1 query); a page that crosses from one day's partition to the next is one
query too, which the service may answer in two pages (it may end a page at a partition boundary).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from azure.functions.timer import TimerRequest

from benchmarks.harness import WEB_VMS, BenchStack, common_alert, plan_book, run_store, store_on
from benchmarks.seeding import BatchClient, NotCapturable, Recorder, coalesced
from benchmarks.wire import count_kinds
from shared.core.alerts import parse_alert
from shared.core.correlation import correlation_key
from shared.core.model import Mode, RunState, StepState

try:  # the engine's split (issue 7) moved these; either place will do
    from shared.core.change import Change
    from shared.core.runs import start_run
except ImportError:
    from shared.core.workflow import Change, start_run  # type: ignore[no-redef,import-not-found,unused-ignore]
try:  # the guardrails (issue 10): a matched plan starts from their verdict
    from shared.core.runs import alert_verdict
except ImportError:
    alert_verdict = None  # type: ignore[assignment,unused-ignore]


def _verdict(plans: Any, plan: Any, alert: Any, resource_id: str, mode: Mode, at: dt.datetime) -> dict[str, Any]:
    return {"verdict": alert_verdict(plans, plan, alert, resource_id, mode, at)} if alert_verdict else {}

RULE = "vm-not-responding-autonomous"
REVIEW_RULE = "vm-not-responding"
READER = "alice@contoso.test"
HISTORY_ENDS = dt.datetime(2026, 11, 30, 23, 59, tzinfo=dt.UTC)  # the newest finished run; older ones before it
SPACING = dt.timedelta(seconds=86.4)  # between finished runs: 1,000 a day
CHUNK = 100  # runs per seeding task: their index entries (one per run in each of two partitions of their day)
# fill a batch of 100 in each


def stalled_change(index: int, prefix: str, now: dt.datetime) -> Any:
    """A review run that started an hour ago and whose consent message was lost: it waits for consent
    with no request open, and only the stall sweeper can move it on."""
    resource_id = f"{WEB_VMS}/vm-stalled-{index:04d}"
    alert = parse_alert(json.dumps(common_alert(REVIEW_RULE, resource_id, f"stalled-{prefix}-{index:05d}")))
    plans = _plans()
    started_at = now - dt.timedelta(hours=1)
    plan = plans.match(alert, resource_id)
    assert plan is not None
    started = start_run(f"{prefix}stalled{index:05d}{uuid.uuid4().hex[:12]}", alert, resource_id, plan,
                        plans.version, Mode.REVIEW, started_at, correlation_key(alert.rule_id, resource_id),
                        **_verdict(plans, plan, alert, resource_id, Mode.REVIEW, started_at))
    return Change(run=started.run, audit=started.audit)


def finished_change(index: int, prefix: str) -> Any:
    """A run of the autonomous restart plan that has succeeded, with the audit lines of its start."""
    resource_id = f"{WEB_VMS}/vm-history-{index % 1000:03d}"
    alert = parse_alert(json.dumps(common_alert(RULE, resource_id, f"history-{prefix}-{index:07d}")))
    plans = _plans()
    created = HISTORY_ENDS - index * SPACING - dt.timedelta(seconds=20)
    plan = plans.match(alert, resource_id)
    assert plan is not None
    started = start_run(f"{prefix}{index:07d}{uuid.uuid4().hex[:16]}", alert, resource_id, plan,
                        plans.version, Mode.AUTONOMOUS, created, correlation_key(alert.rule_id, resource_id),
                        **_verdict(plans, plan, alert, resource_id, Mode.AUTONOMOUS, created))
    run = started.run
    done = replace(run, state=RunState.SUCCEEDED, outcome="every step succeeded (seeded history)",
                   steps=tuple(replace(step, state=StepState.SUCCEEDED) for step in run.steps),
                   updated_at=created + dt.timedelta(seconds=20))
    return Change(run=done, audit=started.audit)


_PLAN_BOOK: Any = None


def _plans() -> Any:
    global _PLAN_BOOK  # noqa: PLW0603  one parse per seeding process
    if _PLAN_BOOK is None:
        _PLAN_BOOK = plan_book()
    return _PLAN_BOOK


def write_finished(store: Any, change: Any) -> None:
    """What the store writes for a run that has ended: the run, and (since issue 7) its index entries."""
    store.create_run(change)
    if hasattr(store, "mark_ended"):
        store.mark_ended(change.run)


def seed_range(connection_string: str, port: int, start: int, end: int, threads: int, fast: bool) -> int:
    """Runs start..end-1 (in one process), written as the store writes them."""
    prefix = uuid.uuid4().hex[:4]
    if fast:
        client = BatchClient(port)

        def create_chunk(first: int) -> int:
            # A chunk's index entries (a partition for its state's day, one for every state's) go as
            # batches of up to 100 operations; each run's own partition (the run and its audit lines)
            # stays one batch of its own.
            recorders: dict[str, Recorder] = {}
            last = min(first + CHUNK, end)
            for index in range(first, last):
                write_finished(store_on(lambda name: recorders.setdefault(name, Recorder())),
                               finished_change(index, prefix))
            captured = [(table, operations) for table, recorder in recorders.items()
                        for operations in recorder.transactions]
            for table, operations in coalesced(captured):
                client.submit(table, operations)
            return last - first

        with ThreadPoolExecutor(threads) as pool:
            return sum(pool.map(create_chunk, range(start, end, CHUNK)))

    store = run_store(connection_string)

    def create(index: int) -> bool:
        write_finished(store, finished_change(index, prefix))
        return True

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(create, range(start, end)))


def capturable() -> str | None:
    """Why the store's writes cannot be captured for fast seeding, or None when they can."""
    recorders: dict[str, Recorder] = {}
    try:
        write_finished(store_on(lambda name: recorders.setdefault(name, Recorder())), finished_change(0, "probe"))
    except (NotCapturable, TypeError) as error:
        return str(error)
    return None if any(r.transactions for r in recorders.values()) else "the store wrote nothing"


def seed(bench: BenchStack, start: int, end: int, workers: int, threads: int, fast: bool) -> float:
    assert bench.stack is not None
    assert bench.stack.azurite is not None
    arguments = (bench.azurite_connection_string, bench.stack.azurite.port)
    began = time.perf_counter()
    if end - start < 200 or workers <= 1:
        seed_range(*arguments, start, end, threads, fast)
    else:
        bounds = [start + (end - start) * n // workers for n in range(workers + 1)]
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            pool.starmap(seed_range, [(*arguments, bounds[n], bounds[n + 1], threads, fast)
                                      for n in range(workers)])
    return time.perf_counter() - began


def measure(bench: BenchStack, label: str, call: Any) -> str:
    assert bench.wire is not None
    bench.wire.wait_quiet(0.5, 60)
    mark = bench.wire.mark()
    began = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - began
    traffic = bench.wire.since(mark)
    kinds = count_kinds(traffic)
    pages = kinds["query page"]
    detail = ", ".join(f"{n} {k}" for k, n in kinds.items())
    return f"  {label:<38} {len(traffic):>6} requests ({detail or 'none'}); {seconds:8.2f} s; {result} " \
           f"[{pages} query pages]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1,10000", help="finished runs to measure at (1,10000,100000: the issue's)")
    parser.add_argument("--workers", type=int, default=2, help="seeding processes")
    parser.add_argument("--threads", type=int, default=8, help="seeding threads per process")
    parser.add_argument("--sdk-seeding", action="store_true",
                        help="seed through the store on the SDK (slower) instead of capturing its writes")
    parser.add_argument("--stalled", type=int, default=600,
                        help="then this many stalled open runs, swept once (0: skip)")
    args = parser.parse_args()
    counts = sorted(int(c) for c in args.counts.split(","))

    with BenchStack(wire=True, timers=False, in_process=True, GATES_AUTONOMY_CEILING="autonomous") as bench:
        from benchmarks import hostapp

        sweeper = hostapp.app.timer("stall_sweeper")
        relay_name, relay = hostapp.app.first_timer("outbox_relay", "resend_relay")  # renamed in issue 7
        reader = bench.sign_in(READER)
        timer = TimerRequest(past_due=False)
        relay(timer)  # the app builds its services (and creates its tables) on first use: not counted

        def list_succeeded() -> str:
            response = reader.get(f"{bench.base_url}/api/runs", params={"state": "succeeded"},
                                  headers={"Accept": "application/json"}, timeout=3600)
            response.raise_for_status()
            return f"{len(response.json()['runs'])} runs on the page"

        seeded = 0
        fast = not args.sdk_seeding
        if fast and (reason := capturable()) is not None:
            print(f"seeding through the SDK: the store's writes cannot be captured ({reason})")
            fast = False
        print("cost of reading runs, by finished runs in the table (requests on the wire, seconds)")
        for count in counts:
            if count > seeded:
                seconds = seed(bench, seeded, count, args.workers, args.threads, fast)
                print(f"\n{count} finished runs (seeded {count - seeded} in {seconds:.1f} s, "
                      f"{(count - seeded) / seconds:.0f} runs/s):")
                seeded = count
            print(measure(bench, "GET /api/runs?state=succeeded", list_succeeded))
            print(measure(bench, "stall sweeper (open runs)", lambda: sweeper(timer) or "done"))
            print(measure(bench, f"{relay_name} (waiting messages)", lambda: relay(timer) or "done"))
        if args.stalled:
            sweep_stalled_runs(bench, args.stalled, lambda: sweeper(timer) or "done")


def sweep_stalled_runs(bench: BenchStack, count: int, sweep: Any) -> None:
    """Does the sweeper see every open run? `count` stalled runs, one sweep, then how many moved on."""
    store = run_store(bench.azurite_connection_string)
    now = dt.datetime.now(dt.UTC)
    prefix = uuid.uuid4().hex[:4]
    changes = [stalled_change(index, prefix, now) for index in range(count)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(store.create_run, changes))
    print(f"\n{count} open runs whose consent message was lost (awaiting consent, no request, idle 1 h):")
    print(measure(bench, "stall sweeper (open runs)", sweep))
    assert bench.stack is not None
    service_bus = bench.stack.service_bus
    deadline = time.monotonic() + 300
    while any(service_bus.queue_depth(queue) for queue in ("consent", "notifications")) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert bench.wire is not None
    bench.wire.wait_quiet(1.0, 300)
    moved = 0
    for change in changes:
        run = store.get_run(change.run.run_id)
        moved += run is not None and bool(run.requests)
    print(f"  runs the sweep moved on (a consent request is open now): {moved} of {count}")


if __name__ == "__main__":
    main()
