"""Entity-group transactions (inserts, replaces and deletes on an ETag, merges, upserts) as one `$batch` request,
sent through the table client's own pipeline: its credential, retries and service headers.

Why not `TableClient.submit_transaction`: azure-core prepares each operation of a transaction and reads each
part of its answer on thread pools it starts for that one transaction (a pool for the batch, one for the
change set, one for the answer: a new thread per part). In the host of an alert storm, where the repeats of
a run are recorded in transactions like these, starting and joining those threads under a busy interpreter
lock took most of a transaction's time (profiled with py-spy, see benchmarks/alert_storm.py); a run's commit
of three entities took 11.5 ms of CPU and 15-20 ms that way, 3.8 ms and 6.5 ms this way. The format is the
Table service's own (OData batch, multipart/mixed); only what the app sends is supported: string, datetime,
boolean and 32-bit integer properties.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

# create: insert (fails if it exists); merge: into an entity that must exist; replace, delete: of an entity
# that must exist, on the ETag given (a third element; "*" when none); upsert_replace, upsert_merge: insert or
# replace, insert or merge.
Kind = Literal["create", "merge", "replace", "delete", "upsert_replace", "upsert_merge"]
Operation = tuple[Kind, Mapping[str, Any]] | tuple[Kind, Mapping[str, Any], str]
_PART = re.compile(rb"^HTTP/1\.1 (\d{3})[^\r\n]*\r\n((?:[^\r\n]+\r\n)*)", re.MULTILINE)
_ETAG = re.compile(rb"^etag:[ \t]*([^\r\n]+)", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class Outcome:
    """A transaction's answer: `failed`, the status of the operation that failed it (nothing written), or
    None; when it committed, each operation's new ETag in order ("" for a delete)."""

    failed: int | None
    etags: tuple[str, ...] = ()


def submit(table: TableClient, operations: Sequence[Operation]) -> int | None:
    """Send the operations as one transaction: None when it committed, otherwise the status of the
    operation that failed it (409 for an insert of an entity that exists, 404 for a merge of one that
    does not, 412 for an ETag that no longer matches), nothing written."""
    return transact(table, operations).failed


def transact(table: TableClient, operations: Sequence[Operation]) -> Outcome:
    """Send the operations as one transaction. Up to 100 operations, all in one partition.
    `HttpResponseError` when the service refused the request as a whole."""
    # The generated client's send_request runs the client's pipeline (the SDK's own batch goes this way).
    # It is not public: a version of the SDK without it gets the SDK's own transaction, slower, the same.
    send_request = getattr(getattr(table, "_client", None), "send_request", None)
    if not callable(send_request):
        return _through_the_sdk(table, operations)
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    parts = [_part(table, index, operation) for index, operation in enumerate(operations)]
    body = (f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"
            + "".join(f"--{changeset}\r\n{part}" for part in parts)
            + f"--{changeset}--\r\n\r\n--{batch}--\r\n").encode()
    request = HttpRequest("POST", f"{table.url}/$batch", content=body, headers={
        "x-ms-version": table.api_version, "DataServiceVersion": "3.0", "MaxDataServiceVersion": "3.0;NetFx",
        "Content-Type": f"multipart/mixed; boundary={batch}", "Accept": "application/json"})
    response = send_request(request, stream=True)  # streamed: left for us to read
    if response.status_code != 202:
        raise HttpResponseError(message=f"the table service refused the transaction: {response.status_code}",
                                response=response)
    answers = [(int(found[1]), found[2]) for found in _PART.finditer(response.read())]
    failed = [status for status, _ in answers if not 200 <= status < 300]
    if failed:
        return Outcome(failed[0])
    if len(answers) != len(operations):
        raise HttpResponseError(message=f"the table service answered {len(answers)} parts for {len(operations)} "
                                        "operations", response=response)
    return Outcome(None, tuple(_etag(headers) for _, headers in answers))


def _etag(headers: bytes) -> str:
    found = _ETAG.search(headers)
    return found[1].decode().strip() if found else ""


def _through_the_sdk(table: TableClient, operations: Sequence[Operation]) -> Outcome:
    try:
        results = table.submit_transaction([_sdk_operation(operation) for operation in operations])
    except TableTransactionError as error:
        return Outcome(error.status_code)
    return Outcome(None, tuple(str(result.get("etag") or "") for result in results))


def _sdk_operation(operation: Operation) -> tuple[Any, ...]:
    kind, entity, etag = _parts(operation)
    # An update with "*" still sends If-Match: * (never an upsert); with an ETag, only on that ETag.
    condition = {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag != "*" else {}
    if kind == "create":
        return ("create", dict(entity))
    if kind in ("merge", "replace"):
        mode = UpdateMode.MERGE if kind == "merge" else UpdateMode.REPLACE
        return ("update", dict(entity), {"mode": mode, **condition})
    if kind == "delete":
        return ("delete", dict(entity), condition)
    return ("upsert", dict(entity), {"mode": UpdateMode.MERGE if kind == "upsert_merge" else UpdateMode.REPLACE})


def _parts(operation: Operation) -> tuple[Kind, Mapping[str, Any], str]:
    if len(operation) == 3:
        return operation[0], operation[1], operation[2]
    return operation[0], operation[1], "*"


_METHODS: dict[str, tuple[str, bool]] = {  # the request's method, and whether it carries If-Match
    "merge": ("MERGE", True), "replace": ("PUT", True), "delete": ("DELETE", True),
    "upsert_replace": ("PUT", False), "upsert_merge": ("MERGE", False)}


def _part(table: TableClient, index: int, operation: Operation) -> str:
    kind, entity, etag = _parts(operation)
    if kind == "create":
        line, extra = f"POST {table.url}/{quote(table.table_name)} HTTP/1.1", "Prefer: return-no-content\r\n"
    else:
        method, conditional = _METHODS[kind]
        address = f"(PartitionKey='{_key(entity['PartitionKey'])}',RowKey='{_key(entity['RowKey'])}')"
        line = f"{method} {table.url}/{quote(table.table_name)}{address} HTTP/1.1"
        extra = f"If-Match: {etag}\r\n" if conditional else ""
    if kind == "delete":
        return ("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                f"Content-ID: {index}\r\n\r\n{line}\r\nDataServiceVersion: 3.0\r\n"
                f"Accept: application/json;odata=nometadata\r\n{extra}\r\n")
    document = json.dumps(_properties(entity))
    return ("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {index}\r\n\r\n{line}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(document.encode())}\r\nDataServiceVersion: 3.0\r\n"
            f"Accept: application/json;odata=nometadata\r\n{extra}\r\n{document}\r\n")


def _key(value: str) -> str:
    return quote(value.replace("'", "''"), safe="")


def _properties(entity: Mapping[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for name, value in entity.items():
        if isinstance(value, dt.datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            document[name] = moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            document[f"{name}@odata.type"] = "Edm.DateTime"
        elif isinstance(value, str | bool):
            document[name] = value
        elif isinstance(value, int) and -2**31 <= value < 2**31:
            document[name] = value  # Edm.Int32, as the SDK sends an int (a larger one it refuses too)
        else:
            raise TypeError(f"property {name}: only strings, datetimes, booleans and 32-bit integers are sent "
                            f"this way, not {value!r}")
    return document
