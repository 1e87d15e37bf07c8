"""Small entity-group transactions (inserts, and merges of entities that must exist) as one `$batch` request,
sent through the table client's own pipeline: its credential, retries and service headers.

Why not `TableClient.submit_transaction`: azure-core prepares each operation of a transaction and reads each
part of its answer on thread pools it starts for that one transaction (a pool for the batch, one for the
change set, one for the answer: a new thread per part). In the host of an alert storm, where the repeats of
a run are recorded in transactions like these, starting and joining those threads under a busy interpreter
lock took most of a transaction's time (profiled with py-spy, see benchmarks/alert_storm.py). The format is
the Table service's own (OData batch, multipart/mixed); only what the app sends is supported: string and
datetime properties.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote

from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

Operation = tuple[Literal["create", "merge"], Mapping[str, Any]]
_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3})", re.MULTILINE)


def submit(table: TableClient, operations: Sequence[Operation]) -> int | None:
    """Send the operations as one transaction: None when it committed, otherwise the status of the
    operation that failed it (409 for an insert of an entity that exists, 404 for a merge of one that
    does not), nothing written. Up to 100 operations, all in one partition. `HttpResponseError` when the
    service refused the request as a whole."""
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
    failed = [int(code) for code in _STATUS.findall(response.read()) if not code.startswith(b"2")]
    return failed[0] if failed else None


def _through_the_sdk(table: TableClient, operations: Sequence[Operation]) -> int | None:
    merge_existing = {"mode": UpdateMode.MERGE}  # an update (never an upsert) sends If-Match: *
    try:
        table.submit_transaction([("create", dict(entity)) if kind == "create" else
                                  ("update", dict(entity), merge_existing) for kind, entity in operations])
    except TableTransactionError as error:
        return error.status_code
    return None


def _part(table: TableClient, index: int, operation: Operation) -> str:
    kind, entity = operation
    document = json.dumps(_properties(entity))
    if kind == "create":
        line, extra = f"POST {table.url}/{quote(table.table_name)} HTTP/1.1", "Prefer: return-no-content\r\n"
    else:
        address = f"(PartitionKey='{_key(entity['PartitionKey'])}',RowKey='{_key(entity['RowKey'])}')"
        line, extra = f"PATCH {table.url}/{quote(table.table_name)}{address} HTTP/1.1", "If-Match: *\r\n"
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
        elif isinstance(value, str):
            document[name] = value
        else:
            raise TypeError(f"property {name}: only strings and datetimes are sent this way, not {type(value)}")
    return document
