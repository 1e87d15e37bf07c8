"""Runs, correlations and rejected alerts in Azure Table Storage (`azure-data-tables`).

A run lives in its own partition: the run entity, one entity per audit line and one per outbox
message. A state change is one entity-group transaction: the run entity replaced on its ETag plus the
new audit and outbox entities, so a change and the messages that must follow it are written together.
Cost of a transition: one point read, one transaction, and one more transaction to clear the outbox.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

from shared.core import codec
from shared.core.change import Change
from shared.core.errors import ConcurrencyConflict
from shared.core.model import AuditEvent, OutboundMessage, Run, RunState
from shared.ports import Correlation
from shared.topology import Table

RUN_ROW = "run"
AUDIT_PREFIX = "audit-"
OUTBOX_PREFIX = "outbox-"


def _range(prefix: str) -> str:
    # Every RowKey that starts with `prefix`: ge prefix and lt prefix with its last character raised.
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return f"RowKey ge '{prefix}' and RowKey lt '{upper}'"


def _run_entity(run: Run) -> dict[str, Any]:
    return {
        "PartitionKey": run.run_id, "RowKey": RUN_ROW, "State": run.state.value,
        "PlanName": run.plan_name, "ResourceId": run.resource_id, "CreatedAt": run.created_at,
        "UpdatedAt": run.updated_at, "Data": json.dumps(codec.run_to_dict(run)),
    }


def _audit_entity(run_id: str, event: AuditEvent) -> dict[str, Any]:
    return {"PartitionKey": run_id, "RowKey": f"{AUDIT_PREFIX}{event.seq:06d}", "Event": event.event,
            "At": event.at, "Data": json.dumps(codec.audit_to_dict(event))}


def _outbox_entity(run_id: str, message: OutboundMessage, now: dt.datetime) -> dict[str, Any]:
    return {"PartitionKey": run_id, "RowKey": f"{OUTBOX_PREFIX}{message.message_id}", "CreatedAt": now,
            "Data": json.dumps(codec.message_to_dict(message))}


def _writes(change: Change) -> list[tuple[str, dict[str, Any]]]:
    run = change.run
    return ([("create", _audit_entity(run.run_id, e)) for e in change.audit]
            # upsert: the same message written again (its id is stable) is not a concurrent writer
            + [("upsert", _outbox_entity(run.run_id, m, run.updated_at)) for m in change.messages])


class TableRunStore:
    def __init__(self, client: TableClient) -> None:
        self._table = client

    def get_run(self, run_id: str) -> Run | None:
        try:
            entity = self._table.get_entity(run_id, RUN_ROW)
        except ResourceNotFoundError:
            return None
        return codec.run_from_dict(json.loads(entity["Data"]), etag=entity.metadata["etag"])

    def create_run(self, change: Change) -> bool:
        operations: list[Any] = [("create", _run_entity(change.run)), *_writes(change)]
        try:
            self._table.submit_transaction(operations)
        except TableTransactionError as error:
            if error.status_code == 409:
                return False
            raise
        return True

    def commit(self, change: Change) -> Run:
        run = change.run
        if run.etag is None:
            raise ValueError("commit needs the etag the run was read with")
        operations: list[Any] = [
            ("update", _run_entity(run), {"mode": UpdateMode.REPLACE, "etag": run.etag,
                                          "match_condition": MatchConditions.IfNotModified}),
            *_writes(change),
        ]
        try:
            results = self._table.submit_transaction(operations)
        except TableTransactionError as error:
            if error.status_code in (409, 412):
                raise ConcurrencyConflict(f"run {run.run_id} changed since it was read") from None
            raise
        except ResourceModifiedError:
            raise ConcurrencyConflict(f"run {run.run_id} changed since it was read") from None
        return replace(run, etag=str(results[0]["etag"]))

    def pending_messages(self, run_id: str) -> list[OutboundMessage]:
        entities = self._table.query_entities(
            f"PartitionKey eq @pk and {_range(OUTBOX_PREFIX)}", parameters={"pk": run_id})
        return [codec.message_from_dict(json.loads(e["Data"])) for e in entities]

    def delete_messages(self, run_id: str, message_ids: Sequence[str]) -> None:
        for start in range(0, len(message_ids), 100):
            chunk = message_ids[start:start + 100]
            operations: list[Any] = [("delete", {"PartitionKey": run_id, "RowKey": f"{OUTBOX_PREFIX}{m}"})
                                     for m in chunk]
            try:
                self._table.submit_transaction(operations)
            except TableTransactionError:
                # Another instance cleared some of them first; delete the rest one by one.
                for message_id in chunk:
                    self._table.delete_entity(run_id, f"{OUTBOX_PREFIX}{message_id}")

    def list_audit(self, run_id: str) -> list[AuditEvent]:
        entities = self._table.query_entities(
            f"PartitionKey eq @pk and {_range(AUDIT_PREFIX)}", parameters={"pk": run_id})
        events = [codec.audit_from_dict(json.loads(e["Data"])) for e in entities]
        return sorted(events, key=lambda e: e.seq)

    def list_runs(self, state: RunState | None = None, limit: int = 100) -> list[Run]:
        query = f"RowKey eq '{RUN_ROW}'" + (" and State eq @state" if state else "")
        parameters = {"state": state.value} if state else None
        runs = []
        for entity in self._table.query_entities(query, parameters=parameters, results_per_page=limit):
            runs.append(codec.run_from_dict(json.loads(entity["Data"]), etag=entity.metadata["etag"]))
        runs.sort(key=lambda r: r.created_at, reverse=True)
        return runs[:limit]

    def runs_with_pending_messages(self, older_than: dt.datetime) -> list[str]:
        entities = self._table.query_entities(
            f"{_range(OUTBOX_PREFIX)} and CreatedAt lt @cutoff", parameters={"cutoff": older_than},
            select=["PartitionKey"])
        return sorted({e["PartitionKey"] for e in entities})


class TableCorrelationStore:
    ROW = "open"

    def __init__(self, client: TableClient) -> None:
        self._table = client

    def get(self, key: str) -> Correlation | None:
        try:
            entity = self._table.get_entity(key, self.ROW)
        except ResourceNotFoundError:
            return None
        return Correlation(key, entity["RunId"], _aware(entity["OpenedAt"]), str(entity.metadata["etag"]))

    def create(self, key: str, run_id: str, opened_at: dt.datetime) -> bool:
        try:
            self._table.create_entity({"PartitionKey": key, "RowKey": self.ROW, "RunId": run_id,
                                       "OpenedAt": opened_at})
        except ResourceExistsError:
            return False
        return True

    def replace(self, current: Correlation, run_id: str, opened_at: dt.datetime) -> bool:
        try:
            self._table.update_entity(
                {"PartitionKey": current.key, "RowKey": self.ROW, "RunId": run_id, "OpenedAt": opened_at},
                mode=UpdateMode.REPLACE, etag=current.etag, match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True


class TableRejectedAlertStore:
    def __init__(self, client: TableClient) -> None:
        self._table = client

    def add(self, message_id: str, reason: str, body: str, received_at: dt.datetime) -> None:
        # Newest first: RowKey sorts by inverted time within one partition per day.
        inverted = f"{10**13 - int(received_at.timestamp() * 1000):013d}"
        self._table.upsert_entity({
            "PartitionKey": received_at.strftime("%Y%m%d"), "RowKey": f"{inverted}-{_safe_key(message_id)}",
            "MessageId": message_id, "Reason": reason, "Body": body[:30000], "ReceivedAt": received_at,
        })

    def list_recent(self, limit: int = 50) -> list[dict[str, Any]]:
        items = [{"message_id": e["MessageId"], "reason": e["Reason"],
                  "received_at": _aware(e["ReceivedAt"]).isoformat(), "body": e["Body"]}
                 for e in self._table.list_entities(results_per_page=limit)]
        items.sort(key=lambda i: i["received_at"], reverse=True)
        return items[:limit]


def _safe_key(value: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in value)[:200]


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def open_tables(service: TableServiceClient) -> dict[Table, TableClient]:
    """The app's tables, created if missing (idempotent; infra/ declares them too)."""
    clients = {}
    for table in Table:
        service.create_table_if_not_exists(table.value)
        clients[table] = service.get_table_client(table.value)
    return clients
