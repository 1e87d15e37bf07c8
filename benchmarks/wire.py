"""A wire counter for Table Storage: a reverse proxy in front of Azurite that classifies every request.

    with TableWire(azurite.port) as wire:           # listens on a free loopback port
        settings["TablesConnection"] = wire.connection_string
        mark = wire.mark()
        ...                                          # the app talks to Azurite through the proxy
        print(format_counts(wire.since(mark)))

Counting on the wire sees what the SDK really sends (retries, continuation pages, batches), whatever
the app's code looks like. Shared Key signs the path and the date, not the host, so the app's signed
requests pass through unchanged. Kinds (the Table service REST API):

  point read     GET  /Table(PartitionKey='..',RowKey='..')
  query page     GET  /Table() or /Table?$filter=..  (a page with NextPartitionKey/NextRowKey continues a query)
  batch          POST /$batch  (an entity-group transaction; its operations are counted and named)
  insert         POST /Table
  update/upsert  PUT  /Table(..)   update with If-Match, upsert (insert or replace) without
  merge          MERGE/PATCH /Table(..)   likewise merge or upsert-merge
  delete         DELETE /Table(..)
  create table   POST /Tables
  other          anything else (list tables, ...)
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACCOUNT = "devstoreaccount1"
# Keys and names of Azurite's well-known development account (public; not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

POINT_READ = "point read"
QUERY = "query page"
BATCH = "batch"
INSERT = "insert"
UPDATE = "update"
UPSERT = "upsert"
MERGE = "merge"
UPSERT_MERGE = "upsert (merge)"
DELETE = "delete"
CREATE_TABLE = "create table"
OTHER = "other"
KINDS = (POINT_READ, QUERY, BATCH, INSERT, UPDATE, UPSERT, MERGE, UPSERT_MERGE, DELETE, CREATE_TABLE, OTHER)

_ENTITY = re.compile(r"^/(?:[^/]+/)?(?P<table>[A-Za-z][A-Za-z0-9]*)\((?P<keys>[^)]*)\)$")
_COLLECTION = re.compile(r"^/(?:[^/]+/)?(?P<table>[A-Za-z][A-Za-z0-9]*)(?:\(\))?$")
_KEY = re.compile(r"(PartitionKey|RowKey)='((?:[^']|'')*)'")
_INNER_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3})", re.MULTILINE)
_SUB_REQUEST = re.compile(rb"^(GET|POST|PUT|MERGE|PATCH|DELETE) (\S+) HTTP/1\.1\r?$", re.MULTILINE)


@dataclass(frozen=True)
class Operation:
    """One request on the wire, or one operation inside a batch."""

    kind: str
    table: str = ""
    partition: str = ""
    row: str = ""
    conditional: bool = False  # If-Match: written on an ETag (or "*")


@dataclass(frozen=True)
class WireRequest:
    kind: str
    table: str
    partition: str
    row: str
    status: int
    started: float  # time.monotonic()
    seconds: float
    continuation: bool = False  # a query page after the first
    filter: str = ""
    operations: tuple[Operation, ...] = ()  # a batch's operations
    entities: int = -1  # entities a query page returned
    refused: bool = False  # a batch answered 202 with an error inside (a 409 or 412: nothing written)

    @property
    def is_commit(self) -> bool:
        """A batch that writes an entity: a transition. A batch of deletes only clears an outbox."""
        return self.kind == BATCH and not self.refused and any(op.kind != DELETE for op in self.operations)


def _keys(text: str) -> tuple[str, str]:
    found = {name: urllib.parse.unquote(value).replace("''", "'") for name, value in _KEY.findall(
        urllib.parse.unquote(text))}
    return found.get("PartitionKey", ""), found.get("RowKey", "")


def classify(method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Operation:
    """The kind of one Table service request (method, request target, lower-cased header names)."""
    split = urllib.parse.urlsplit(target)
    path = urllib.parse.unquote(split.path)
    method = method.upper()
    conditional = "if-match" in headers
    if path.rstrip("/").endswith("/$batch"):
        return Operation(BATCH)
    entity = _ENTITY.match(path)
    if entity and entity["keys"]:
        table = entity["table"]
        partition, row = _keys(entity["keys"])
        kind = {
            "GET": POINT_READ,
            "PUT": UPDATE if conditional else UPSERT,
            "MERGE": MERGE if conditional else UPSERT_MERGE,
            "PATCH": MERGE if conditional else UPSERT_MERGE,
            "DELETE": DELETE,
        }.get(method, OTHER)
        if table == "Tables":
            kind = OTHER  # delete or read of a table itself
        return Operation(kind, table, partition, row, conditional)
    collection = _COLLECTION.match(path)
    if collection:
        table = collection["table"]
        if table == "Tables":
            return Operation(CREATE_TABLE if method == "POST" else OTHER, table)
        if method == "GET":
            return Operation(QUERY, table)
        if method == "POST":
            return Operation(INSERT, table, *_body_keys(body))
    return Operation(OTHER)


def _body_keys(body: bytes) -> tuple[str, str]:
    # An insert names its keys in the JSON body; a regex spares parsing the whole entity.
    partition = re.search(rb'"PartitionKey"\s*:\s*"((?:[^"\\]|\\.)*)"', body)
    row = re.search(rb'"RowKey"\s*:\s*"((?:[^"\\]|\\.)*)"', body)
    return (partition[1].decode() if partition else "", row[1].decode() if row else "")


def batch_operations(body: bytes) -> tuple[Operation, ...]:
    """The operations of a `$batch` body (multipart/mixed, one changeset), each classified."""
    operations = []
    parts = _SUB_REQUEST.split(body)
    # split() gives [preamble, method, target, rest, method, target, rest, ...]
    for index in range(1, len(parts) - 2, 3):
        method, target, rest = parts[index].decode(), parts[index + 1].decode(), parts[index + 2]
        header_block, _, sub_body = rest.partition(b"\r\n\r\n")
        headers = {}
        for line in header_block.decode("latin-1").splitlines():
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        path = urllib.parse.urlsplit(target).path
        operations.append(classify(method, path, headers, sub_body))
    return tuple(operations)


class _Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one write, without Nagle: a second small write would wait for the
    # client's delayed ACK (about 40 ms a response on a kept-alive connection), timing the proxy.
    disable_nagle_algorithm = True
    server: _Server

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        started = time.monotonic()
        status, reason, reply_headers, reply = self.server.upstream_call(self.command, self.path, self.headers, body)
        seconds = time.monotonic() - started
        # Recorded before the client has its answer: whoever waits for the answer finds the request counted.
        self.server.wire.record(self.command, self.path, headers, body, status, started, seconds, reply)
        head = [f"HTTP/1.1 {status} {reason}"]
        head += [f"{name}: {value}" for name, value in reply_headers
                 if name.lower() not in ("transfer-encoding", "connection", "content-length")]
        head.append(f"Content-Length: {len(reply)}")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply)

    do_GET = do_POST = do_PUT = do_PATCH = do_MERGE = do_DELETE = do_HEAD = _forward

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, wire: TableWire, upstream: tuple[str, int]) -> None:
        super().__init__(("127.0.0.1", 0), _Proxy)
        self.wire = wire
        self.upstream = upstream
        self._local = threading.local()

    def upstream_call(self, method: str, target: str, headers: Any, body: bytes
                      ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        # One upstream connection per client connection thread, kept alive as the client's is.
        for attempt in range(2):
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = self._local.connection = http.client.HTTPConnection(*self.upstream, timeout=600)
            try:
                connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in headers.items():
                    if name.lower() not in ("connection", "keep-alive", "content-length"):
                        connection.putheader(name, value)
                connection.putheader("Content-Length", str(len(body)))
                connection.endheaders(body)
                response = connection.getresponse()
                return response.status, response.reason, response.getheaders(), response.read()
            except (ConnectionError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


@dataclass
class TableWire:
    """A counting reverse proxy in front of a Table service on 127.0.0.1:`upstream_port`."""

    upstream_port: int
    upstream_host: str = "127.0.0.1"
    requests: list[WireRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> TableWire:
        self._server = _Server(self, (self.upstream_host, self.upstream_port))
        self._thread = threading.Thread(target=self._server.serve_forever, name="table-wire", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> TableWire:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the wire counter is not started")
        return int(self._server.server_address[1])

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"TableEndpoint=http://127.0.0.1:{self.port}/{ACCOUNT};")

    # ----- recording ---------------------------------------------------------------------------
    def record(self, method: str, target: str, headers: dict[str, str], body: bytes, status: int,
               started: float, seconds: float, reply: bytes = b"") -> None:
        operation = classify(method, target, headers, body)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
        request = WireRequest(
            kind=operation.kind, table=operation.table, partition=operation.partition, row=operation.row,
            status=status, started=started, seconds=seconds,
            continuation=operation.kind == QUERY and ("NextPartitionKey" in query or "NextRowKey" in query),
            filter=query.get("$filter", [""])[0],
            operations=batch_operations(body) if operation.kind == BATCH else (),
            entities=_entities(reply) if operation.kind == QUERY else -1,
            refused=operation.kind == BATCH and _batch_refused(reply),
        )
        with self._lock:
            self.requests.append(request)
            self._lock.notify_all()

    def mark(self) -> int:
        with self._lock:
            return len(self.requests)

    def since(self, mark: int, until: int | None = None) -> list[WireRequest]:
        with self._lock:
            return list(self.requests[mark:until])

    def last_activity(self) -> float:
        with self._lock:
            return self.requests[-1].started + self.requests[-1].seconds if self.requests else 0.0

    def wait_quiet(self, quiet: float = 1.0, timeout: float = 60.0, after: int | None = None) -> None:
        """Until no request has passed for `quiet` seconds (and, with `after`, at least one after that mark)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                seen = len(self.requests)
                last = self.requests[-1].started + self.requests[-1].seconds if self.requests else 0.0
            if (after is None or seen > after) and time.monotonic() - last >= quiet:
                return
            time.sleep(0.05)
        raise TimeoutError(f"the table traffic did not settle within {timeout:.0f} s")


def _batch_refused(reply: bytes) -> bool:
    return any(int(status) >= 400 for status in _INNER_STATUS.findall(reply))


def _entities(reply: bytes) -> int:
    try:
        document = json.loads(reply or b"{}")
    except ValueError:
        return -1
    value = document.get("value") if isinstance(document, dict) else None
    return len(value) if isinstance(value, list) else -1


# ----- reading the counts ----------------------------------------------------------------------------
def count_kinds(requests: Iterable[WireRequest]) -> Counter[str]:
    return Counter(request.kind for request in requests)


def commits(requests: Iterable[WireRequest], table: str | None = None) -> int:
    """Batches that commit a change (on `table`, when given: a run's transitions, not its index's)."""
    return sum(1 for request in requests if request.is_commit
               and (table is None or any(op.table == table for op in request.operations)))


def describe(request: WireRequest) -> str:
    """One request as a short line: kind, table, keys, a batch's operations."""
    where = request.table + (f" {request.partition[:12]}/{request.row[:24]}" if request.partition else "")
    if request.kind == BATCH:
        ops = Counter(op.kind for op in request.operations)
        rows = Counter(_row_family(op.row) for op in request.operations)
        table = request.operations[0].table if request.operations else ""
        return ("REFUSED " if request.refused else "") + (f"batch of {len(request.operations)} on {table} "
                f"{request.operations[0].partition[:12] if request.operations else ''}: "
                f"{', '.join(f'{n} {k}' for k, n in ops.items())} ({', '.join(f'{n} {r}' for r, n in rows.items())})"
                + (" [commit]" if request.is_commit else " [clears]"))
    if request.kind == QUERY:
        return (f"query page on {request.table}{' (continued)' if request.continuation else ''}, "
                f"{request.entities} entities: {request.filter[:90]}")
    return f"{request.kind} {where} → {request.status}"


def _row_family(row: str) -> str:
    # audit-000003, outbox-<id>: the part before the first '-' names what the row holds
    return row.split("-", 1)[0].rstrip("0123456789") or "?"


def format_counts(requests: Sequence[WireRequest], indent: str = "  ") -> list[str]:
    """Per-kind lines: count, with batches' operations and queries' pages spelt out."""
    lines = []
    kinds = count_kinds(requests)
    for kind in KINDS:
        if not kinds[kind]:
            continue
        chosen = [r for r in requests if r.kind == kind]
        extra = ""
        if kind == BATCH:
            operations = sum(len(r.operations) for r in chosen)
            committing = sum(1 for r in chosen if r.is_commit)
            refused = sum(1 for r in chosen if r.refused)
            extra = (f"  ({operations} operations; {committing} commit a change, "
                     f"{len(chosen) - committing - refused} only delete, {refused} refused)")
        elif kind == QUERY:
            first = sum(1 for r in chosen if not r.continuation)
            empty = sum(1 for r in chosen if r.entities == 0)
            extra = f"  ({first} queries, {len(chosen)} pages, {empty} pages empty)"
        tables = Counter(r.table or (r.operations[0].table if r.operations else "") for r in chosen)
        on = ", ".join(f"{table or '?'} {n}" for table, n in sorted(tables.items()))
        lines.append(f"{indent}{kind:<15} {kinds[kind]:>5}{extra}   [{on}]")
    lines.append(f"{indent}{'total':<15} {len(requests):>5}")
    return lines
