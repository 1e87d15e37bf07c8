"""Runs, correlations and rejected alerts in Azure Table Storage (`azure-data-tables`).

A run lives in its own partition: the run entity (steps, requests and the outbox of messages that must
follow its last change ride in it), one entity per audit line, and, while the run takes repeat firings
(it is open, or it is a shadow run), a marker row: written in the batch that creates the run, deleted in
the batch that ends it, so a repeat is recorded in one batch that needs the marker, without reading the
run. A state change is one entity-group transaction: the run entity replaced on its ETag plus the new
audit lines. With the read that precedes
it, that is the floor: one read and one write per transition.

The run index (a table of its own) makes listing and sweeping cost what they return. In its partition
`runs`: `open|<run>` for every open run (written before the run, so no open run is missing from it; they
are few, and the sweeper reads them all in one query), `resend|<run>` for a run whose messages could not be
sent where nothing would redeliver them, and `paused|<run>` for a run the kill switch paused (written
before the pause, so lifting the switch finds every paused run in one query). Ended runs, with a summary
for lists, in a partition per UTC day, `ended|<day, newest first>`, each run twice: `<state>|<newest
first>|<run>` and `*|<newest first>|<run>` (every state), written in one batch, keyed by when the run
ended (`Run.ended_time`), which no later change to the run moves: indexing it again writes the same
rows. Among one label's rows the table's own order (PartitionKey, then RowKey) is newest first across
days, so a page is one range query over the days that resumes after the row it ended on, and no
partition grows with history (a day's runs). A state rarely reached costs more to list on the real
service: a day without it may end a page empty, with a continuation (followed).

The kill switch is one entity in a table of its own, beside one entity per throw or lift (its audit),
written together in one transaction.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableEntity, TableServiceClient, TableTransactionError, UpdateMode

from shared.adapters import table_batch
from shared.adapters.group_commit import GroupCommit
from shared.core import codec
from shared.core.alert_status import AlertState, AlertStatus
from shared.core.change import Change
from shared.core.correlation import stands_for_incident
from shared.core.errors import ConcurrencyConflict
from shared.core.model import AuditEvent, Run, RunState
from shared.core.pause import LIFTED, KillSwitch, SwitchChange, SwitchEntry, SwitchSource
from shared.ports import (
    MAX_JOINS_AT_ONCE,
    Correlation,
    InvalidContinuation,
    JoinResult,
    OpenRun,
    RunPage,
    RunSummary,
)
from shared.topology import Table

RUN_ROW = "run"
AUDIT_PREFIX = "audit-"
JOIN_PREFIX = "audit-j-"  # a repeat firing recorded beside its run; sorts after the numbered lines
JOINABLE_ROW = "joinable"  # present while the run takes repeats: open, or shadowed (see record_join_if_open)
INDEX_PARTITION = "runs"  # the open, resend and paused entries; ended runs have a partition per day
OPEN = "open|"
ENDED = "ended|"
ANY_STATE = "*"
RESEND = "resend|"
PAUSED = "paused|"


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


def _joinable_entity(run_id: str) -> dict[str, Any]:
    return {"PartitionKey": run_id, "RowKey": JOINABLE_ROW}


def _takes_repeats(run: Run) -> bool:
    # As `joins_open_run` has it: an open run, or one that stands for its incident though ended.
    return not run.state.is_terminal or stands_for_incident(run)


def _join_entity(run_id: str, key: str, event: AuditEvent) -> dict[str, Any]:
    return {"PartitionKey": run_id, "RowKey": _join_row(key), "Event": event.event, "At": event.at,
            "AlertKey": key, "Data": json.dumps(codec.audit_to_dict(event))}


def _join_row(key: str) -> str:
    return f"{JOIN_PREFIX}{hashlib.sha256(key.encode()).hexdigest()[:40]}"


def _newest_first(at: dt.datetime) -> str:
    return f"{NEWEST_FIRST - _millis(at):013d}"


NEWEST_FIRST = 10**13  # a time in milliseconds, inverted: the keys of later times sort first
_UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LAST_DAY = 99999999  # a day as yyyymmdd, inverted
_ENDED_POSITION = re.compile(r"ended\|([a-z_]+|\*)\|(\d{8})\|(\d{13})\|([^']+)\Z")
BATCH_MOST = 100  # operations in one entity-group transaction
MOVED_A_SWEEP = 500  # ended entries in the layout before days moved a sweep (see move_undated_ended)


def _millis(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


def _ended_partition(millis: int) -> str:
    # The UTC day of the time the row key holds (integer arithmetic: the same day for the same key, always).
    day = int((_UNIX_EPOCH + dt.timedelta(milliseconds=millis)).strftime("%Y%m%d"))
    return f"{ENDED}{_LAST_DAY - day:08d}"


def ended_keys(label: str, at: dt.datetime, run_id: str) -> tuple[str, str]:
    """Where a run that ended at `at` is indexed under `label`, its state or `*`: the
    partition of its day, newest first, and in it the row of its label, time (newest first) and id. As
    the day follows from the time, the order of (PartitionKey, RowKey) among one label's rows is the
    order of the time alone; a run's two rows share a partition, so they are written in one batch."""
    millis = _millis(at)
    return _ended_partition(millis), f"{label}|{NEWEST_FIRST - millis:013d}|{run_id}"


def run_ended_keys(label: str, run: Run) -> tuple[str, str]:
    """Where the ended `run` is indexed under `label`: by the time it ended, which no later change moves."""
    ended = run.ended_time
    if ended is None:
        raise ValueError(f"run {run.run_id} is {run.state.value}: only an ended run is indexed as ended")
    return ended_keys(label, ended, run.run_id)


def _summary_entity(keys: tuple[str, str], run: Run) -> dict[str, Any]:
    summary = RunSummary.of(run)
    return {"PartitionKey": keys[0], "RowKey": keys[1], "RunId": run.run_id, "State": run.state.value,
            "PlanName": summary.plan_name, "ResourceId": summary.resource_id, "AlertRule": summary.alert_rule,
            "Severity": summary.severity, "CreatedAt": summary.created_at, "UpdatedAt": summary.updated_at,
            "Outcome": summary.outcome[:1000], "Effect": summary.effect, "DecidedBy": summary.decided_by[:500],
            "Writes": summary.writes, "Credentials": summary.credentials, "Replay": summary.replay,
            **({"EndedAt": summary.ended_at} if summary.ended_at else {})}


def _summary(entity: TableEntity) -> RunSummary:
    return RunSummary(run_id=entity["RunId"], state=RunState(entity["State"]), plan_name=entity["PlanName"],
                      resource_id=entity["ResourceId"], alert_rule=entity["AlertRule"], severity=entity["Severity"],
                      created_at=_aware(entity["CreatedAt"]), updated_at=_aware(entity["UpdatedAt"]),
                      outcome=entity.get("Outcome", ""), effect=entity.get("Effect", ""),
                      decided_by=entity.get("DecidedBy", ""), writes=bool(entity.get("Writes", False)),
                      credentials=entity.get("Credentials", ""), replay=entity.get("Replay", ""),
                      # An entry written before it had one was keyed by the run's last change.
                      ended_at=_aware(entity.get("EndedAt") or entity["UpdatedAt"]))


ENDED_DAYS = (ENDED, ENDED[:-1] + "}")  # the PartitionKeys [lower, upper) of every day


def ended_rows(label: str) -> tuple[str, str]:
    """The RowKeys [lower, upper) of `label`'s rows (a state, or `*`) in any day."""
    return f"{label}|", f"{label}}}"


def ended_window(label: str, since: dt.datetime, until: dt.datetime) -> tuple[tuple[str, str], tuple[str, str]]:
    """The ended runs under `label` that ended in [since, until): their PartitionKeys [newest day,
    oldest day], both included, and their RowKeys [lower, upper). The index keys by inverted time, so
    `until` gives the lower keys and `since` the upper ones; the rows alone bound the period, the days
    only keep the query to the partitions that can hold it."""
    until_ms, since_ms = _millis(until) - 1, _millis(since)
    return ((_ended_partition(until_ms), _ended_partition(since_ms)),
            (f"{label}|{NEWEST_FIRST - until_ms:013d}", f"{label}|{NEWEST_FIRST - since_ms + 1:013d}"))


def encode_continuation(row_key: str) -> str:
    return base64.urlsafe_b64encode(row_key.encode()).decode().rstrip("=")


def decode_continuation(token: str, prefix: str) -> str:
    try:
        row_key = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValueError("continuation is not one this service issued") from None
    if not row_key.startswith(prefix) or "'" in row_key:
        raise ValueError("continuation is not one this service issued for this list")
    return row_key


def encode_ended_after(keys: tuple[str, str]) -> str:
    """A continuation after the ended entry at `keys` (PartitionKey, RowKey): `ended|<label>|<day>|<time>|<run>`."""
    label, rest = keys[1].split("|", 1)
    return encode_continuation(f"{ENDED}{label}|{keys[0].removeprefix(ENDED)}|{rest}")


def decode_ended_after(token: str, label: str) -> tuple[str, str] | None:
    """The keys of the ended entry a list of `label` resumes after, or None to start at its newest (the
    first page was all open runs). `InvalidContinuation` unless the token is one such list handed out:
    its state, and a day that is the day of its time."""
    position = decode_continuation(token, f"{ENDED}{label}|")
    if position == f"{ENDED}{label}|":
        return None
    found = _ENDED_POSITION.match(position)
    partition = f"{ENDED}{found[2]}" if found else ""
    if found is None or found[1] != label or _ended_partition(NEWEST_FIRST - int(found[3])) != partition:
        raise InvalidContinuation("continuation is not one this service issued for this list")
    return partition, f"{label}|{found[3]}|{found[4]}"


class TableRunStore:
    def __init__(self, client: TableClient, index: TableClient) -> None:
        self._table = client
        self._index = index

    def get_run(self, run_id: str) -> Run | None:
        try:
            entity = self._table.get_entity(run_id, RUN_ROW)
        except ResourceNotFoundError:
            return None
        return codec.run_from_dict(json.loads(entity["Data"]), etag=entity.metadata["etag"])

    def create_run(self, change: Change) -> bool:
        run = change.run
        if not run.state.is_terminal:
            self._index.upsert_entity({"PartitionKey": INDEX_PARTITION, "RowKey": f"{OPEN}{run.run_id}",
                                       "RunId": run.run_id, "CreatedAt": run.created_at})
        operations: list[table_batch.Operation] = [("create", _run_entity(run)),
                                                   *[("create", _audit_entity(run.run_id, e)) for e in change.audit]]
        if _takes_repeats(run):
            operations.append(("create", _joinable_entity(run.run_id)))
        failed = table_batch.submit(self._table, operations)
        if failed == 409:
            return False
        if failed is not None:
            raise HttpResponseError(message=f"run {run.run_id}: the table service refused its creation ({failed})")
        return True

    def commit(self, change: Change) -> Run:
        run = change.run
        if run.etag is None:
            raise ValueError("commit needs the etag the run was read with")
        operations: list[table_batch.Operation] = [
            ("replace", _run_entity(run), run.etag), *[("create", _audit_entity(run.run_id, e)) for e in change.audit]]
        if change.ends_run:
            operations.append(("delete", _joinable_entity(run.run_id)))
        outcome = table_batch.transact(self._table, operations)
        if outcome.failed == 404 and change.ends_run:
            # A run from before the marker existed has none to delete: end it without (the run entity
            # itself is there, it was just read; a 404 for it too is raised below).
            outcome = table_batch.transact(self._table, operations[:-1])
        if outcome.failed in (409, 412):
            raise ConcurrencyConflict(f"run {run.run_id} changed since it was read")
        if outcome.failed == 404:
            raise ConcurrencyConflict(f"run {run.run_id} is gone since it was read")
        if outcome.failed is not None:
            raise HttpResponseError(message=f"run {run.run_id}: the table service refused the commit "
                                            f"({outcome.failed})")
        return replace(run, etag=outcome.etags[0])

    def mark_ended(self, run: Run) -> None:
        # The day's two rows in one batch, then the open entry (another partition): a host that dies in
        # between leaves the run indexed as open, and the sweeper finds it ended and marks it again, on
        # the same rows however the run changed since.
        failed = table_batch.submit(self._index, [("upsert_merge", _summary_entity(run_ended_keys(label, run), run))
                                                  for label in (run.state.value, ANY_STATE)])
        if failed is not None:
            raise HttpResponseError(message=f"run {run.run_id}: the table service refused its index rows ({failed})")
        with contextlib.suppress(ResourceNotFoundError):  # moved before, or never open (an unmatched alert)
            self._index.delete_entity(INDEX_PARTITION, f"{OPEN}{run.run_id}")

    def open_runs(self) -> list[OpenRun]:
        entities = self._index.query_entities(f"PartitionKey eq '{INDEX_PARTITION}' and {_range(OPEN)}",
                                              select=["RunId", "CreatedAt"])
        return [OpenRun(e["RunId"], _aware(e["CreatedAt"])) for e in entities]

    def drop_open(self, run_id: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self._index.delete_entity(INDEX_PARTITION, f"{OPEN}{run_id}")

    def list_runs(self, state: RunState | None = None, limit: int = 100,
                  continuation: str | None = None) -> RunPage:
        if state is not None and not state.is_terminal:
            return self._list_open(state, limit, continuation)
        # Every state: the open runs lead the first page, then the ended ones newest first.
        leading = () if state is not None or continuation else self._open_summaries(None)[:limit]
        label = state.value if state else ANY_STATE
        after = decode_ended_after(continuation, label) if continuation else None
        wanted = limit - len(leading)
        if wanted <= 0:
            return RunPage(leading, encode_continuation(f"{ENDED}{label}|"))
        lower, upper = ended_rows(label)
        # Past the entry the last page ended on: its day and the days before it, and in them the label's
        # rows after it (each of an older day is after it too: past the label, the row key is the time).
        query = (f"PartitionKey ge '{after[0] if after else ENDED_DAYS[0]}' and PartitionKey lt '{ENDED_DAYS[1]}' "
                 f"and RowKey {'gt' if after else 'ge'} '{after[1] if after else lower}' and RowKey lt '{upper}'")
        return self._page(query, wanted, leading)

    def ended_between(self, state: RunState | None, since: dt.datetime, until: dt.datetime, limit: int = 500,
                      continuation: str | None = None) -> RunPage:
        label = state.value if state else ANY_STATE
        (newest_day, oldest_day), (lower, upper) = ended_window(label, since, until)
        after = decode_ended_after(continuation, label) if continuation else None
        query = (f"PartitionKey ge '{max(after[0], newest_day) if after else newest_day}' and "
                 f"PartitionKey le '{oldest_day}' and RowKey ge '{lower}' and RowKey lt '{upper}'")
        if after:
            query += f" and RowKey gt '{after[1]}'"
        return self._page(query, limit, ())

    def _page(self, query: str, wanted: int, leading: tuple[RunSummary, ...]) -> RunPage:
        # One more than shown, to know whether another page follows. One request when the service's first
        # page holds them; it may end a page early (at a partition boundary, after 5 s of work), even
        # empty, with a continuation of its own, and the SDK's pages are followed until they are in hand.
        found = self._index.query_entities(query, results_per_page=wanted + 1)
        entities: list[TableEntity] = list(itertools.islice(found, wanted + 1))
        shown = entities[:wanted]
        more = len(entities) > wanted
        return RunPage(leading + tuple(_summary(e) for e in shown),
                       encode_ended_after((shown[-1]["PartitionKey"], shown[-1]["RowKey"])) if more and shown
                       else None)

    def move_undated_ended(self, most: int = MOVED_A_SWEEP) -> int:
        """Move up to `most` ended entries from the layout before the index had a partition per
        day (`ended|<state>|<newest first>|<run>` rows in the partition `runs`) to their day; the number
        moved. Written first, deleted after: a host that dies in between leaves both, and the next call
        writes the same entry again and deletes the old one."""
        query = f"PartitionKey eq '{INDEX_PARTITION}' and {_range(ENDED)}"
        undated = list(itertools.islice(self._index.query_entities(query, results_per_page=most), most))
        moved: dict[str, list[Any]] = {}
        for entity in undated:
            _, label, inverted, run_id = entity["RowKey"].split("|", 3)
            at = _UNIX_EPOCH + dt.timedelta(milliseconds=NEWEST_FIRST - int(inverted))
            partition, row = ended_keys(label, at, run_id)
            moved.setdefault(partition, []).append(("upsert", {**entity, "PartitionKey": partition, "RowKey": row}))
        deleted = [("delete", {"PartitionKey": INDEX_PARTITION, "RowKey": e["RowKey"]}) for e in undated]
        for operations in [*moved.values(), deleted]:
            for first in range(0, len(operations), BATCH_MOST):
                self._index.submit_transaction(operations[first:first + BATCH_MOST])
        return len(undated)

    def _open_summaries(self, state: RunState | None) -> tuple[RunSummary, ...]:
        # Open runs are few (what is in flight) and change state often: read the runs themselves.
        runs = [r for r in (self.get_run(o.run_id) for o in self.open_runs())
                if r and not r.state.is_terminal and (state is None or r.state is state)]
        return tuple(RunSummary.of(r) for r in sorted(runs, key=lambda r: r.created_at, reverse=True))

    def _list_open(self, state: RunState, limit: int, continuation: str | None) -> RunPage:
        offset = int(decode_continuation(continuation, OPEN)[len(OPEN):]) if continuation else 0
        runs = self._open_summaries(state)
        more = len(runs) > offset + limit
        return RunPage(runs[offset:offset + limit], encode_continuation(f"{OPEN}{offset + limit}") if more else None)

    def list_audit(self, run_id: str) -> list[AuditEvent]:
        entities = self._table.query_entities(
            f"PartitionKey eq @pk and {_range(AUDIT_PREFIX)}", parameters={"pk": run_id})
        events = [codec.audit_from_dict(json.loads(e["Data"])) for e in entities]
        return sorted(events, key=lambda e: (e.at, e.seq))

    def record_join(self, run_id: str, key: str, event: AuditEvent) -> bool:
        try:
            self._table.create_entity(_join_entity(run_id, key, event))
        except ResourceExistsError:
            return False
        return True

    def record_join_if_open(self, run_id: str, key: str, event: AuditEvent) -> JoinResult:
        return self._joins_if_open(run_id, [(key, event)])

    def record_joins_if_open(self, run_id: str, joins: Sequence[tuple[str, AuditEvent]]) -> JoinResult:
        if not 0 < len(joins) <= MAX_JOINS_AT_ONCE or len({key for key, _ in joins}) != len(joins):
            raise ValueError(f"1 to {MAX_JOINS_AT_ONCE} repeats of distinct alerts at once, not {len(joins)}")
        return self._joins_if_open(run_id, joins)

    def _joins_if_open(self, run_id: str, joins: Sequence[tuple[str, AuditEvent]]) -> JoinResult:
        # The join lines first: a transaction fails on its first failing operation, so a duplicate (409)
        # is answered as one even when the run has ended since (404 on the marker, which must exist).
        operations: list[table_batch.Operation] = [
            *[("create", _join_entity(run_id, key, event)) for key, event in joins],
            ("merge", _joinable_entity(run_id))]
        failed = table_batch.submit(self._table, operations)
        if failed is None:
            return JoinResult.JOINED
        if failed == 409:
            return JoinResult.DUPLICATE
        if failed == 404:
            return JoinResult.NOT_OPEN
        raise HttpResponseError(f"run {run_id}: recording {len(joins)} repeat(s) failed with {failed}")

    def joined_alerts(self, run_id: str) -> frozenset[str]:
        entities = self._table.query_entities(f"PartitionKey eq @pk and {_range(JOIN_PREFIX)}",
                                              parameters={"pk": run_id}, select=["AlertKey"])
        return frozenset(e["AlertKey"] for e in entities)

    def join_recorded(self, run_id: str, key: str) -> bool:
        try:
            self._table.get_entity(run_id, _join_row(key), select=["AlertKey"])
        except ResourceNotFoundError:
            return False
        return True

    def mark_paused(self, run_id: str) -> None:
        self._index.upsert_entity({"PartitionKey": INDEX_PARTITION, "RowKey": f"{PAUSED}{run_id}", "RunId": run_id})

    def paused_runs(self) -> list[str]:
        entities = self._index.query_entities(f"PartitionKey eq '{INDEX_PARTITION}' and {_range(PAUSED)}",
                                              select=["RunId"])
        return [e["RunId"] for e in entities]

    def drop_paused(self, run_id: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self._index.delete_entity(INDEX_PARTITION, f"{PAUSED}{run_id}")

    def request_resend(self, run_id: str) -> None:
        self._index.upsert_entity({"PartitionKey": INDEX_PARTITION, "RowKey": f"{RESEND}{run_id}", "RunId": run_id})

    def resend_requests(self) -> list[str]:
        entities = self._index.query_entities(f"PartitionKey eq '{INDEX_PARTITION}' and {_range(RESEND)}",
                                              select=["RunId"])
        return [e["RunId"] for e in entities]

    def clear_resend(self, run_id: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self._index.delete_entity(INDEX_PARTITION, f"{RESEND}{run_id}")


class TableSwitchStore:
    """The kill switch: `switch|state` and `switch|audit|<newest first>|<id>` in one partition."""

    PARTITION = "switch"
    ROW = "state"
    AUDIT = "audit|"

    def __init__(self, client: TableClient) -> None:
        self._table = client

    def get(self) -> KillSwitch:
        try:
            entity = self._table.get_entity(self.PARTITION, self.ROW)
        except ResourceNotFoundError:
            return LIFTED
        by = json.loads(entity["By"]) if entity.get("By") else None
        return KillSwitch(engaged=bool(entity["Engaged"]), reason=entity.get("Reason", ""),
                          by=codec.actor_from_dict(by) if by else None,
                          at=_aware(entity["At"]) if entity.get("At") else None,
                          source=SwitchSource(entity.get("Source", SwitchSource.ADMIN.value)),
                          setting_seen=entity.get("SettingSeen", ""), etag=str(entity.metadata["etag"]))

    def put(self, change: SwitchChange) -> KillSwitch:
        switch = change.switch
        entity: dict[str, Any] = {
            "PartitionKey": self.PARTITION, "RowKey": self.ROW, "Engaged": switch.engaged,
            "Reason": switch.reason[:1000], "By": json.dumps(codec.actor_to_dict(switch.by)) if switch.by else "",
            "Source": switch.source.value, "SettingSeen": switch.setting_seen[:1000]}
        if switch.at is not None:
            entity["At"] = switch.at
        operations: list[Any] = [
            ("update", entity, {"mode": UpdateMode.REPLACE, "etag": switch.etag,
                                "match_condition": MatchConditions.IfNotModified})
            if switch.etag else ("create", entity)]
        if change.entry is not None:
            e = change.entry
            operations.append(("create", {
                "PartitionKey": self.PARTITION, "RowKey": f"{self.AUDIT}{_newest_first(e.at)}|{uuid.uuid4().hex[:12]}",
                "Event": e.event, "At": e.at, "Actor": json.dumps(codec.actor_to_dict(e.actor)),
                "Reason": e.reason[:1000], "Source": e.source.value}))
        try:
            results = self._table.submit_transaction(operations)
        except TableTransactionError as error:
            if error.status_code in (409, 412):
                raise ConcurrencyConflict("the kill switch changed since it was read") from None
            raise
        except (ResourceModifiedError, ResourceExistsError):
            raise ConcurrencyConflict("the kill switch changed since it was read") from None
        return replace(switch, etag=str(results[0]["etag"]))

    def history(self, limit: int = 20) -> list[SwitchEntry]:
        query = f"PartitionKey eq '{self.PARTITION}' and {_range(self.AUDIT)}"
        pages = self._table.query_entities(query, results_per_page=limit).by_page()
        return [SwitchEntry(event=e["Event"], at=_aware(e["At"]), actor=codec.actor_from_dict(json.loads(e["Actor"])),
                            reason=e.get("Reason", ""), source=SwitchSource(e.get("Source", "admin")))
                for e in list(next(pages, []))[:limit]]


class TableCorrelationStore:
    ROW = "open"
    EARLIER = 20  # runs kept that the key named before: far more than a person's status check looks back

    def __init__(self, client: TableClient) -> None:
        self._table = client

    def get(self, key: str) -> Correlation | None:
        try:
            entity = self._table.get_entity(key, self.ROW)
        except ResourceNotFoundError:
            return None
        return Correlation(key, entity["RunId"], _aware(entity["OpenedAt"]), str(entity.metadata["etag"]),
                           tuple(json.loads(entity.get("Earlier") or "[]")))

    def get_fresh(self, key: str) -> Correlation | None:
        return self.get(key)

    def get_known(self, key: str) -> Correlation | None:
        return None  # every answer is a read

    def create(self, key: str, run_id: str, opened_at: dt.datetime) -> Correlation | None:
        try:
            written = self._table.create_entity({"PartitionKey": key, "RowKey": self.ROW, "RunId": run_id,
                                                 "OpenedAt": opened_at})
        except ResourceExistsError:
            return None
        return Correlation(key, run_id, opened_at, str(written["etag"]))

    def replace(self, current: Correlation, run_id: str, opened_at: dt.datetime) -> Correlation | None:
        earlier = [current.run_id, *current.earlier][:self.EARLIER]
        try:
            written = self._table.update_entity(
                {"PartitionKey": current.key, "RowKey": self.ROW, "RunId": run_id, "OpenedAt": opened_at,
                 "Earlier": json.dumps(earlier)},
                mode=UpdateMode.REPLACE, etag=current.etag, match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return None
        return Correlation(current.key, run_id, opened_at, str(written["etag"]), tuple(earlier))


class TableRejectedAlertStore:
    """One partition per day and one row per alert, both keyed inverted, so the table's own order (by
    PartitionKey, then RowKey) is newest first and a page is one query that resumes where the last ended."""

    BODY_LIMIT = 30_000  # characters kept of a body: a string property holds 64 KB (32K UTF-16 characters)

    def __init__(self, client: TableClient) -> None:
        self._table = client

    def add(self, message_id: str, reason: str, body: str, received_at: dt.datetime) -> None:
        day = int(received_at.strftime("%Y%m%d"))
        inverted = f"{10**13 - int(received_at.timestamp() * 1000):013d}"
        self._table.upsert_entity({
            "PartitionKey": f"{99999999 - day:08d}", "RowKey": f"{inverted}-{_safe_key(message_id)}",
            "MessageId": message_id, "Reason": reason[:2000], "Body": body[:self.BODY_LIMIT],
            "BodyCut": len(body) > self.BODY_LIMIT, "ReceivedAt": received_at,
        })

    def list_page(self, limit: int, continuation: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        # The tables SDK's continuation token is a dict (next PartitionKey and RowKey), typed as str.
        token: Any = _decode_continuation(continuation)
        pages = self._table.list_entities(results_per_page=limit).by_page(continuation_token=token)
        page = next(pages, None)
        items = [{"message_id": e["MessageId"], "reason": e["Reason"],
                  "received_at": _aware(e["ReceivedAt"]).isoformat(), "body": e["Body"],
                  "body_cut": bool(e.get("BodyCut", False))}
                 for e in (page or [])]
        following = getattr(pages, "continuation_token", None)
        return items, _encode_continuation(following) if following else None


def _encode_continuation(token: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(token, sort_keys=True).encode()).decode().rstrip("=")


def _decode_continuation(text: str | None) -> dict[str, str] | None:
    """The table's own token (next PartitionKey and RowKey), carried opaquely in a URL."""
    if not text:
        return None
    try:
        token = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise InvalidContinuation("the continuation token is not one this list handed out") from None
    if not isinstance(token, dict) or set(token) - {"PartitionKey", "RowKey"} or \
            not all(v is None or (isinstance(v, str) and len(v) <= 1024) for v in token.values()):
        raise InvalidContinuation("the continuation token is not one this list handed out")
    return token


class TableAlertStatusStore:
    """Each alert's row under its key, all in one partition, so that the rows added for concurrent posts (the
    intake) or concurrent messages (the plan stage, for alerts that came by the queue) go out together as
    one transaction (group commit): in a storm the intake's insert was the largest part of the host's time
    on the HTTP path. Reads are point reads. One partition takes about 2,000 entities a second on the real
    service, far above what alerting sends. On Azurite a read or a replace in it slows as it grows (it scans
    the partition; an insert does not): reads of a status are rare, replaces rarer."""

    PARTITION = "status"
    LEGACY_ROW = "status"  # rows added before were each a partition of their own, under this row key

    def __init__(self, client: TableClient) -> None:
        self._table = client
        self._adding: GroupCommit[dict[str, Any], bool] = GroupCommit(self._add_together)

    def get(self, key: str) -> AlertStatus | None:
        if not _ALERT_KEY.match(key):
            return None  # never a valid key: no read
        entity = self._read(self.PARTITION, key) or self._read(key, self.LEGACY_ROW)
        if entity is None:
            return None
        return AlertStatus(key=key, state=AlertState(entity["State"]), alert_id=entity["AlertId"],
                           condition=entity["Condition"], received_at=_aware(entity["ReceivedAt"]),
                           runs=tuple(json.loads(entity.get("Runs") or "[]")), outcome=entity.get("Outcome", ""),
                           targets=tuple((t, k) for t, k in json.loads(entity.get("Targets") or "[]")),
                           alert_key=entity.get("AlertKey", ""))

    def _read(self, partition: str, row: str) -> TableEntity | None:
        try:
            return self._table.get_entity(partition, row)
        except ResourceNotFoundError:
            return None

    def add(self, status: AlertStatus) -> bool:
        return self._adding.submit(self._entity(status))

    def put(self, status: AlertStatus) -> None:
        # Most rows put are new (an alert that came by the queue has no row from the intake): added with the
        # others being added; one that exists is replaced. (An upsert would cost the same on the service, but
        # Azurite looks an entity up by scanning its partition, except for an insert.)
        if not self.add(status):
            self._table.upsert_entity(self._entity(status), mode=UpdateMode.REPLACE)

    def _add_together(self, entities: list[dict[str, Any]]) -> list[bool | BaseException]:
        added: list[bool | BaseException] = []
        chunk: list[dict[str, Any]] = []
        size = 0
        for entity in entities:
            entity_size = sum(len(str(value)) for value in entity.values())
            if chunk and (len(chunk) == MAX_ADDED_TOGETHER or size + entity_size > MAX_BYTES_TOGETHER):
                added += self._add_chunk(chunk)
                chunk, size = [], 0
            chunk.append(entity)
            size += entity_size
        return added + self._add_chunk(chunk)

    def _add_chunk(self, entities: list[dict[str, Any]]) -> list[bool | BaseException]:
        # The same alert posted twice at once: one insert; the other finds it added.
        first: dict[str, int] = {}
        for index, entity in enumerate(entities):
            first.setdefault(entity["RowKey"], index)
        if len(first) > 1:
            try:
                failed = table_batch.submit(self._table, [("create", entities[i]) for i in first.values()])
            except HttpResponseError:
                failed = -1  # refused as a whole: one at a time below, each with its own retries and error
            if failed is None:
                return [first[entity["RowKey"]] == index for index, entity in enumerate(entities)]
        # A row that exists fails a transaction whole (all or none): then each is added on its own.
        return [self._add_one(entity) for entity in entities]

    def _add_one(self, entity: dict[str, Any]) -> bool | BaseException:
        try:
            self._table.create_entity(entity)
        except ResourceExistsError:
            return False
        except Exception as error:  # this caller's alone
            return error
        return True

    def _entity(self, status: AlertStatus) -> dict[str, Any]:
        return {"PartitionKey": self.PARTITION, "RowKey": status.key, "State": status.state.value,
                "AlertId": status.alert_id, "Condition": status.condition, "ReceivedAt": status.received_at,
                "Runs": json.dumps(list(status.runs)), "Outcome": status.outcome[:8000],
                "Targets": json.dumps([list(t) for t in status.targets]), "AlertKey": status.alert_key}


# A transaction's limits are 100 operations and 4 MiB (an alert's targets make some rows large).
MAX_ADDED_TOGETHER = 100
MAX_BYTES_TOGETHER = 2 * 1024 * 1024


_ALERT_KEY = re.compile(r"^[0-9a-f]{64}\Z")


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
