"""Azurite's cost to the test run: install, cold start, and the latency of the calls the app makes.

    .venv/bin/python benchmarks/azurite_startup.py [--install] [--starts 5] [--operations 300]

`--install` times `npm ci` from the committed lock file into a scratch folder (the project's own copy
is left alone). Cold start is `AzuriteTables.start()` until the first request (create table) answers.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from azure.data.tables import TableServiceClient, UpdateMode

from local_azure.azurite import NODE_DIR, AzuriteTables


def time_install() -> None:
    npm = shutil.which("npm")
    if npm is None:
        print("install: npm not on PATH")
        return
    with tempfile.TemporaryDirectory() as scratch:
        for name in ("package.json", "package-lock.json"):
            shutil.copy(NODE_DIR / name, Path(scratch) / name)
        began = time.perf_counter()
        subprocess.run([npm, "ci", "--prefix", scratch, "--no-audit", "--no-fund", "--loglevel=error"],  # noqa: S603
                       check=True, timeout=900)
        seconds = time.perf_counter() - began
        size = sum(f.stat().st_size for f in Path(scratch, "node_modules").rglob("*") if f.is_file())
    print(f"install (npm ci): {seconds:.1f} s, {size / 1e6:.0f} MB")


def time_cold_starts(count: int) -> None:
    to_listen: list[float] = []
    to_first_answer: list[float] = []
    for attempt in range(count):
        began = time.perf_counter()
        with AzuriteTables() as azurite:
            to_listen.append(time.perf_counter() - began)
            TableServiceClient.from_connection_string(azurite.connection_string).create_table(f"cold{attempt}")
            to_first_answer.append(time.perf_counter() - began)
    print(f"cold start to listening: median {statistics.median(to_listen) * 1000:.0f} ms over {count}")
    print(f"cold start to first answered request: median {statistics.median(to_first_answer) * 1000:.0f} ms, "
          f"max {max(to_first_answer) * 1000:.0f} ms")


def time_operations(count: int) -> None:
    with AzuriteTables() as azurite:
        table = TableServiceClient.from_connection_string(azurite.connection_string).create_table("bench")
        upserts: list[float] = []
        reads: list[float] = []
        batches: list[float] = []
        for n in range(count):
            began = time.perf_counter()
            table.upsert_entity({"PartitionKey": "run", "RowKey": f"r{n}", "state": "pending"}, mode=UpdateMode.MERGE)
            upserts.append(time.perf_counter() - began)
            began = time.perf_counter()
            table.get_entity("run", f"r{n}")
            reads.append(time.perf_counter() - began)
            began = time.perf_counter()
            table.submit_transaction([("upsert", {"PartitionKey": f"b{n}", "RowKey": str(i)}) for i in range(3)])
            batches.append(time.perf_counter() - began)
    for label, values in (("upsert", upserts), ("point read", reads), ("transaction of 3", batches)):
        print(f"{label}: median {statistics.median(values) * 1000:.2f} ms over {count}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--install", action="store_true", help="also time a fresh `npm ci` (needs the registry)")
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--operations", type=int, default=300)
    args = parser.parse_args()
    if args.install:
        time_install()
    time_cold_starts(args.starts)
    time_operations(args.operations)


if __name__ == "__main__":
    main()
