"""Seeding history fast, in the store's own format: what `TableRunStore` would write, sent by a lean client.

The SDK spends several milliseconds of CPU building each entity-group transaction; seeding 100,000
runs through it takes longer than the benchmark it feeds. Here the store itself decides what to write
(it is handed a recorder instead of a `TableClient`, and its transactions are captured), and those
operations go to the Table service as one `$batch` each over plain keep-alive HTTP, signed with
Azurite's well-known development key (Shared Key Lite). A store that reads, or writes in a way the
recorder does not know, raises `NotCapturable`: seed through the SDK then.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import re
import threading
import uuid
from collections.abc import Sequence
from email.utils import formatdate
from typing import Any

from benchmarks.wire import ACCOUNT, ACCOUNT_KEY

Operation = tuple[Any, ...]
_INNER_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3})", re.MULTILINE)
INT32 = 2**31


class NotCapturable(Exception):
    """The store did something other than submit transactions; seed through the SDK instead."""


class Recorder:
    """Stands in for a `TableClient`: keeps the transactions submitted to it, answers as the SDK would."""

    def __init__(self) -> None:
        self.transactions: list[list[Operation]] = []

    def submit_transaction(self, operations: Sequence[Operation], **kwargs: Any) -> list[dict[str, Any]]:
        captured = list(operations)
        self.transactions.append(captured)
        return [{"etag": 'W/"seeded"'} for _ in captured]

    def upsert_entity(self, entity: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        self.transactions.append([("upsert", entity)])
        return {"etag": 'W/"seeded"'}

    def delete_entity(self, *args: Any, **kwargs: Any) -> None:
        # By keys or by entity, as the SDK takes it; seeding starts from nothing, so it deletes nothing.
        keys = args[0] if args and isinstance(args[0], dict) else {"PartitionKey": args[0], "RowKey": args[1]}
        self.transactions.append([("delete", keys)])

    def __getattr__(self, name: str) -> Any:
        if name == "_client":
            # As an SDK without the generated client would be: the store's own `$batch` (table_batch) then
            # submits through `submit_transaction`, which is captured.
            raise AttributeError(name)
        raise NotCapturable(f"the store called {name}(): only submitted transactions can be captured")


def _odata(entity: dict[str, Any]) -> dict[str, Any]:
    """An entity as the Table service's JSON takes it, with the EDM types the values need."""
    out: dict[str, Any] = {}
    for name, value in entity.items():
        if isinstance(value, bool) or (isinstance(value, int) and -INT32 <= value < INT32) or isinstance(value, str):
            out[name] = value
        elif isinstance(value, int):
            out[name], out[f"{name}@odata.type"] = str(value), "Edm.Int64"
        elif isinstance(value, float):
            out[name], out[f"{name}@odata.type"] = value, "Edm.Double"
        elif isinstance(value, dt.datetime):
            moment = value.astimezone(dt.UTC) if value.tzinfo else value
            out[name], out[f"{name}@odata.type"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "Edm.DateTime"
        else:
            raise NotCapturable(f"property {name}: no seeding encoding for {type(value).__name__}")
    return out


def _key(value: str) -> str:
    return value.replace("'", "''")


class BatchClient:
    """Entity-group transactions over plain HTTP/1.1 to Azurite, one kept-alive connection per thread."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self._host, self._port = host, port
        self._base = f"http://{host}:{port}/{ACCOUNT}"
        self._key = base64.b64decode(ACCOUNT_KEY)
        self._local = threading.local()

    def submit(self, table: str, operations: Sequence[Operation]) -> None:
        batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
        parts = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"]
        for operation in operations:
            kind, entity = operation[0], operation[1]
            if kind == "create":
                line = f"POST {self._base}/{table} HTTP/1.1"
            elif kind == "delete":
                continue  # seeding starts from nothing: a delete (an index's open entry) has nothing to remove
            elif kind == "upsert":  # the SDK's default upsert merges
                line = (f"MERGE {self._base}/{table}(PartitionKey='{_key(entity['PartitionKey'])}',"
                        f"RowKey='{_key(entity['RowKey'])}') HTTP/1.1")
            else:
                raise NotCapturable(f"a seeded transaction holds a {kind!r} operation")
            parts.append(f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                         f"\r\n{line}\r\nContent-Type: application/json\r\nAccept: application/json;odata=nometadata"
                         f"\r\nPrefer: return-no-content\r\nDataServiceVersion: 3.0\r\n\r\n"
                         f"{json.dumps(_odata(entity))}\r\n")
        parts.append(f"--{changeset}--\r\n\r\n--{batch}--\r\n")
        body = "".join(parts).encode()
        path = f"/{ACCOUNT}/$batch"
        date = formatdate(usegmt=True)
        signature = base64.b64encode(hmac.new(self._key, f"{date}\n/{ACCOUNT}{path}".encode(),
                                              hashlib.sha256).digest()).decode()
        headers = {"x-ms-date": date, "x-ms-version": "2019-02-02", "DataServiceVersion": "3.0",
                   "MaxDataServiceVersion": "3.0;NetFx", "Accept": "application/json",
                   "Content-Type": f"multipart/mixed; boundary={batch}",
                   "Authorization": f"SharedKeyLite {ACCOUNT}:{signature}"}
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = http.client.HTTPConnection(self._host, self._port, timeout=120)
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        reply = response.read()
        refused = [int(s) for s in _INNER_STATUS.findall(reply) if int(s) >= 400]
        if response.status != 202 or refused:
            raise RuntimeError(f"seeding batch refused: {response.status} {refused} {reply[:300]!r}")


MAX_BATCH = 100  # operations in one entity-group transaction


def coalesced(transactions: Sequence[tuple[str, Sequence[Operation]]]) -> list[tuple[str, list[Operation]]]:
    """The same writes in fewer requests: transactions on the same table and partition (the run index's
    partition of a state's day, written by each run that ended on it) merged into entity-group batches of
    up to 100 operations. Only
    for seeding: the rows are new and distinct, so the order of transactions within a partition and their
    grouping change nothing the store would read back. For the same reason an upsert goes as an insert:
    Azurite looks an entity up by scanning its partition, and an upsert (merge) looks twice."""
    groups: dict[tuple[str, str], list[list[Operation]]] = {}
    for table, operations in transactions:
        written = [("create", *operation[1:]) if operation[0] == "upsert" else operation
                   for operation in operations if operation[0] != "delete"]  # nothing to delete yet
        if not written:
            continue
        partitions = {str(operation[1]["PartitionKey"]) for operation in written}
        if len(partitions) != 1:
            raise NotCapturable(f"a transaction on {table} spans partitions {sorted(partitions)}")
        batches = groups.setdefault((table, partitions.pop()), [[]])
        if len(batches[-1]) + len(written) > MAX_BATCH:
            batches.append([])
        batches[-1].extend(written)
    return [(table, batch) for (table, _), batches in groups.items() for batch in batches if batch]
