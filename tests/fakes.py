"""In-memory fakes at each port, with the semantics that matter: ETags, insert-if-absent, at-least-once."""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as dt
import itertools
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from azure.core.credentials import AccessToken

from shared.adapters.table_store import (
    ANY_STATE,
    ENDED_DAYS,
    decode_continuation,
    decode_ended_after,
    encode_continuation,
    encode_ended_after,
    ended_rows,
    ended_window,
    run_ended_keys,
)
from shared.core import codec
from shared.core.alert_status import AlertStatus
from shared.core.arm_outcomes import ArmOutcome, OutcomeKind
from shared.core.catalog import ActionSpec
from shared.core.change import Change
from shared.core.correlation import stands_for_incident
from shared.core.errors import ConcurrencyConflict
from shared.core.limits import LimitClaim, Liveness, admit, without
from shared.core.model import ArmOperation, AuditEvent, OutboundMessage, Run, RunState
from shared.core.pause import LIFTED, KillSwitch, SwitchChange, SwitchEntry
from shared.ports import (
    MAX_JOINS_AT_ONCE,
    Correlation,
    CredentialUnavailable,
    InvalidContinuation,
    JoinResult,
    OpenRun,
    RunPage,
    RunSummary,
)


class FakeClock:
    def __init__(self, start: dt.datetime | None = None) -> None:
        self.current = start or dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        return self.current

    def advance(self, delta: dt.timedelta) -> None:
        self.current += delta


class FakeRunStore:
    """Stores serialised copies, as the table store does, and enforces the ETag on every commit."""

    def __init__(self) -> None:
        self._runs: dict[str, tuple[str, str]] = {}  # run_id -> (json, etag)
        self._audit: dict[str, list[str]] = {}
        self._open: dict[str, dt.datetime] = {}  # the run index: open runs, with when they were indexed
        self._ended: dict[tuple[str, str], RunSummary] = {}  # ended runs by index keys (newest first)
        self._resend: set[str] = set()
        self._paused: set[str] = set()
        self._joins: dict[str, dict[str, str]] = {}  # run -> alert key -> audit line
        self._joinable: set[str] = set()  # the runs' markers: those that take repeats (open or shadowed)
        self.joins_if_open = 0  # calls of record_join_if_open, whatever their answer
        self._etags = itertools.count(1)
        self._lock = threading.RLock()
        self.commits = 0
        self.conflicts = 0
        self.conflict_next_commits = 0  # inject: the next N commits lose an ETag race they did not see
        self._read_barrier: threading.Barrier | None = None

    def hold_reads(self, parties: int) -> None:
        """The next `parties` readers each wait until all have read: they decide on the same version."""
        self._read_barrier = threading.Barrier(parties, timeout=10)

    def get_run(self, run_id: str) -> Run | None:
        with self._lock:
            stored = self._runs.get(run_id)
            run = codec.run_from_dict(json.loads(stored[0]), etag=stored[1]) if stored else None
        barrier = self._read_barrier
        if barrier is not None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            self._read_barrier = None
        return run

    def _write(self, change: Change) -> str:
        etag = f"W/{next(self._etags)}"
        run_id = change.run.run_id
        self._runs[run_id] = (json.dumps(codec.run_to_dict(change.run)), etag)
        audit = self._audit.setdefault(run_id, [])
        seqs = {json.loads(a)["seq"] for a in audit}
        for event in change.audit:
            if event.seq in seqs:
                raise AssertionError(f"audit line {event.seq} written twice")
            audit.append(json.dumps(codec.audit_to_dict(event)))
        self.commits += 1
        return etag

    def create_run(self, change: Change) -> bool:
        with self._lock:
            if not change.run.state.is_terminal:
                self._open.setdefault(change.run.run_id, change.run.created_at)
            if change.run.run_id in self._runs:
                return False
            self._write(change)
            if not change.run.state.is_terminal or stands_for_incident(change.run):
                self._joinable.add(change.run.run_id)
            return True

    def commit(self, change: Change) -> Run:
        with self._lock:
            stored = self._runs.get(change.run.run_id)
            if self.conflict_next_commits > 0:
                self.conflict_next_commits -= 1
                self._runs[change.run.run_id] = (stored[0], f"W/{next(self._etags)}") if stored else stored
                self.conflicts += 1
                raise ConcurrencyConflict(change.run.run_id)
            if stored is None or stored[1] != change.run.etag:
                self.conflicts += 1
                raise ConcurrencyConflict(change.run.run_id)
            if change.ends_run:
                self._joinable.discard(change.run.run_id)  # absent already for a run from before the marker
            return replace(change.run, etag=self._write(change))

    def forget_marker(self, run_id: str) -> None:
        """As a run written before runs had a marker: it takes repeats only through a read of it."""
        with self._lock:
            self._joinable.discard(run_id)

    def list_audit(self, run_id: str) -> list[AuditEvent]:
        with self._lock:
            lines = [*self._audit.get(run_id, []), *self._joins.get(run_id, {}).values()]
            return sorted((codec.audit_from_dict(json.loads(a)) for a in lines), key=lambda e: (e.at, e.seq))

    def record_join(self, run_id: str, key: str, event: AuditEvent) -> bool:
        with self._lock:
            joins = self._joins.setdefault(run_id, {})
            if key in joins:
                return False
            joins[key] = json.dumps(codec.audit_to_dict(event))
            return True

    def record_join_if_open(self, run_id: str, key: str, event: AuditEvent) -> JoinResult:
        with self._lock:
            self.joins_if_open += 1
            joins = self._joins.setdefault(run_id, {})
            if key in joins:
                return JoinResult.DUPLICATE  # the table store's batch fails on the join line first
            if run_id not in self._joinable:
                return JoinResult.NOT_OPEN
            joins[key] = json.dumps(codec.audit_to_dict(event))
            return JoinResult.JOINED

    def record_joins_if_open(self, run_id: str, joins: Sequence[tuple[str, AuditEvent]]) -> JoinResult:
        if not 0 < len(joins) <= MAX_JOINS_AT_ONCE or len({key for key, _ in joins}) != len(joins):
            raise ValueError(f"1 to {MAX_JOINS_AT_ONCE} repeats of distinct alerts at once, not {len(joins)}")
        with self._lock:
            self.joins_if_open += 1
            recorded = self._joins.setdefault(run_id, {})
            if any(key in recorded for key, _ in joins):
                return JoinResult.DUPLICATE
            if run_id not in self._joinable:
                return JoinResult.NOT_OPEN
            recorded.update({key: json.dumps(codec.audit_to_dict(event)) for key, event in joins})
            return JoinResult.JOINED

    def joined_alerts(self, run_id: str) -> frozenset[str]:
        with self._lock:
            return frozenset(self._joins.get(run_id, {}))

    def join_recorded(self, run_id: str, key: str) -> bool:
        with self._lock:
            return key in self._joins.get(run_id, {})

    def mark_ended(self, run: Run) -> None:
        with self._lock:
            self._open.pop(run.run_id, None)
            for label in (run.state.value, ANY_STATE):
                self._ended[run_ended_keys(label, run)] = RunSummary.of(run)

    def open_runs(self) -> list[OpenRun]:
        with self._lock:
            return [OpenRun(run_id, at) for run_id, at in self._open.items()]

    def drop_open(self, run_id: str) -> None:
        with self._lock:
            self._open.pop(run_id, None)

    def move_undated_ended(self) -> int:
        return 0  # this store has only ever kept the index's current layout

    def ended_between(self, state: RunState | None, since: dt.datetime, until: dt.datetime, limit: int = 500,
                      continuation: str | None = None) -> RunPage:
        """The table store's range read of the ended index, with its keys and continuation, in memory."""
        label = state.value if state else ANY_STATE
        (newest_day, oldest_day), (lower, upper) = ended_window(label, since, until)
        after = (decode_ended_after(continuation, label) if continuation else None) or ("", "")
        with self._lock:
            keys = sorted(k for k in self._ended if newest_day <= k[0] <= oldest_day and lower <= k[1] < upper
                          and k > after)
            shown = keys[:limit]
            return RunPage(tuple(self._ended[k] for k in shown),
                           encode_ended_after(shown[-1]) if len(keys) > limit and shown else None)

    def list_runs(self, state: RunState | None = None, limit: int = 100,
                  continuation: str | None = None) -> RunPage:
        """The table store's paging, with its continuation tokens (and their refusal), in memory."""
        with self._lock:
            open_runs = sorted((r for r in (self.get_run(i) for i in self._open)
                                if r and not r.state.is_terminal and (state is None or r.state is state)),
                               key=lambda r: r.created_at, reverse=True)
            if state is not None and not state.is_terminal:
                offset = int(decode_continuation(continuation, "open|")[5:]) if continuation else 0
                more = len(open_runs) > offset + limit
                return RunPage(tuple(RunSummary.of(r) for r in open_runs[offset:offset + limit]),
                               encode_continuation(f"open|{offset + limit}") if more else None)
            label = state.value if state else ANY_STATE
            after = (decode_ended_after(continuation, label) if continuation else None) or ("", "")
            leading = () if state is not None or continuation else tuple(RunSummary.of(r) for r in open_runs)[:limit]
            lower, upper = ended_rows(label)
            keys = sorted(k for k in self._ended if ENDED_DAYS[0] <= k[0] < ENDED_DAYS[1] and lower <= k[1] < upper
                          and k > after)
            if len(leading) >= limit:
                return RunPage(leading[:limit], encode_continuation(f"ended|{label}|"))
            shown = keys[:limit - len(leading)]
            more = len(keys) > len(shown)
            return RunPage(leading + tuple(self._ended[k] for k in shown),
                           encode_ended_after(shown[-1]) if more and shown else None)

    def all_runs(self) -> list[Run]:
        """Every run, newest first: for tests to look at what the store holds."""
        with self._lock:
            runs = [r for r in (self.get_run(i) for i in self._runs) if r]
        return sorted(runs, key=lambda r: r.created_at, reverse=True)

    def mark_paused(self, run_id: str) -> None:
        with self._lock:
            self._paused.add(run_id)

    def paused_runs(self) -> list[str]:
        with self._lock:
            return sorted(self._paused)

    def drop_paused(self, run_id: str) -> None:
        with self._lock:
            self._paused.discard(run_id)

    def request_resend(self, run_id: str) -> None:
        with self._lock:
            self._resend.add(run_id)

    def resend_requests(self) -> list[str]:
        with self._lock:
            return sorted(self._resend)

    def clear_resend(self, run_id: str) -> None:
        with self._lock:
            self._resend.discard(run_id)

    def raw_rows(self) -> str:
        """Everything the store holds, as text: for asserting that no secret is at rest."""
        with self._lock:
            return json.dumps([self._runs, self._audit])


class FakeSwitchStore:
    """The kill switch in memory, with the table's ETag and its audit lines; `reads` counts point reads
    (each stage reads it afresh before calling ARM, never from a cache)."""

    def __init__(self) -> None:
        self._switch = LIFTED
        self._etags = itertools.count(1)
        self.entries: list[SwitchEntry] = []
        self.reads = 0
        self._lock = threading.Lock()
        self.on_read: Callable[[], None] | None = None  # inject: something happens as the switch is read

    def get(self) -> KillSwitch:
        with self._lock:
            self.reads += 1
            switch = self._switch
        if self.on_read is not None:
            self.on_read()
        return switch

    def put(self, change: SwitchChange) -> KillSwitch:
        with self._lock:
            if change.switch.etag != self._switch.etag:
                raise ConcurrencyConflict("kill switch")
            self._switch = replace(change.switch, etag=f"W/{next(self._etags)}")
            if change.entry is not None:
                self.entries.insert(0, change.entry)
            return self._switch

    def history(self, limit: int = 20) -> list[SwitchEntry]:
        with self._lock:
            return self.entries[:limit]


class FakeCorrelationStore:
    def __init__(self) -> None:
        self._rows: dict[str, Correlation] = {}
        self._etags = itertools.count(1)
        self._lock = threading.Lock()

    def get(self, key: str) -> Correlation | None:
        with self._lock:
            return self._rows.get(key)

    def get_fresh(self, key: str) -> Correlation | None:
        return self.get(key)

    def get_known(self, key: str) -> Correlation | None:
        return self.get(key)  # in memory: no request either way

    def create(self, key: str, run_id: str, opened_at: dt.datetime) -> Correlation | None:
        with self._lock:
            if key in self._rows:
                return None
            written = self._rows[key] = Correlation(key, run_id, opened_at, str(next(self._etags)))
            return written

    def replace(self, current: Correlation, run_id: str, opened_at: dt.datetime) -> Correlation | None:
        with self._lock:
            if self._rows.get(current.key) != current:
                return None
            written = self._rows[current.key] = Correlation(current.key, run_id, opened_at, str(next(self._etags)),
                                                            (current.run_id, *current.earlier)[:20])
            return written


class FakeRejectedAlerts:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, message_id: str, reason: str, body: str, received_at: dt.datetime) -> None:
        self.items.append({"message_id": message_id, "reason": reason, "body": body,
                           "received_at": received_at.isoformat()})

    def list_page(self, limit: int, continuation: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        newest_first = list(reversed(self.items))
        if continuation is not None and not continuation.isdigit():
            raise InvalidContinuation("the continuation token is not one this list handed out")
        start = int(continuation or 0)
        end = start + limit
        return newest_first[start:end], str(end) if end < len(newest_first) else None


class FakeAlertStatus:
    def __init__(self) -> None:
        self.rows: dict[str, AlertStatus] = {}
        self.reads = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> AlertStatus | None:
        self.reads += 1
        return self.rows.get(key)

    def add(self, status: AlertStatus) -> bool:
        with self._lock:
            if status.key in self.rows:
                return False
            self.rows[status.key] = status
            return True

    def put(self, status: AlertStatus) -> None:
        self.rows[status.key] = status


class FakeLimitStore:
    """The counters in memory, decided by the same `admit` as the table store; one lock stands for the ETag."""

    def __init__(self) -> None:
        self.counters: dict[str, dict[str, dt.datetime]] = {}
        self.writes = 0
        self._lock = threading.Lock()

    def claim(self, claim: LimitClaim, now: dt.datetime, live: Liveness | None = None) -> bool:
        with self._lock:
            members = self.counters.get(claim.key, {})
            admitted, after = admit(members, claim, now, live)
            if admitted and after != members:
                self.counters[claim.key] = after
                self.writes += 1
            return admitted

    def release(self, claims: Sequence[LimitClaim]) -> None:
        with self._lock:
            for claim in claims:
                members = self.counters.get(claim.key)
                if members is None or claim.member not in members:
                    continue
                self.writes += 1
                if after := without(members, [claim.member]):
                    self.counters[claim.key] = after
                else:
                    del self.counters[claim.key]

    def members(self, key: str) -> set[str]:
        with self._lock:
            return set(self.counters.get(key, {}))


@dataclass
class Delivery:
    message: OutboundMessage
    delivery_count: int = 1


class FakeBus:
    """Queues in memory, with duplicate detection by message id within the queues' window (10 minutes)."""

    def __init__(self, clock: FakeClock | None = None, window: dt.timedelta = dt.timedelta(minutes=10)) -> None:
        self.queues: dict[str, list[Delivery]] = {}
        self.sent: list[OutboundMessage] = []
        self._seen: dict[str, dt.datetime] = {}
        self._clock = clock or FakeClock()
        self._window = window
        self.fail_next_sends = 0
        self._lock = threading.Lock()

    def send(self, messages: Sequence[OutboundMessage]) -> None:
        with self._lock:
            if self.fail_next_sends:
                self.fail_next_sends -= 1
                raise ConnectionError("injected: the host died before the send")
            now = self._clock.now()
            for message in messages:
                self.sent.append(message)
                seen_at = self._seen.get(message.message_id)
                if seen_at is not None and now - seen_at < self._window:
                    continue
                self._seen[message.message_id] = now
                self.queues.setdefault(message.queue, []).append(Delivery(copy.deepcopy(message)))

    def take(self, queue: str) -> Delivery | None:
        with self._lock:
            items = self.queues.get(queue, [])
            return items.pop(0) if items else None

    def put_back(self, delivery: Delivery) -> None:
        with self._lock:
            delivery.delivery_count += 1
            self.queues.setdefault(delivery.message.queue, []).insert(0, delivery)

    def pending(self) -> int:
        with self._lock:
            return sum(len(v) for v in self.queues.values())


@dataclass
class FakeResource:
    """What really happened to the resource: every executed write, with the identity that did it."""

    executed: list[tuple[str, str]] = field(default_factory=list)  # (action, identity)
    reads: list[tuple[str, str]] = field(default_factory=list)


class FakeCredential:
    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.revoked = False

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        if self.revoked:
            raise AssertionError("a revoked credential was used")
        return AccessToken(f"token-of-{self.identity}", 0)

    def revoke(self) -> None:
        self.revoked = True


class HostStopped(BaseException):
    """The host died mid-call (a BaseException, as a killed process is never caught by the app)."""


class FakeArm:
    """Grants by identity: `agent_can` and `user_can` list the permissions each holds (`users_can` per
    person, by the credential's identity, e.g. "user:bob"). Reads answer with `document`; preview reads
    and permission reads are kept apart from `calls` (the steps' own calls). A long-running write is
    accepted as an operation (handed to `on_accepted`) that `resume` can follow later; `stop_host` makes
    the host die at a point: "before_answer" (ARM acted, the answer never came) or "after_accept"
    (while following the operation)."""

    def __init__(self, agent_can: set[str] | None = None, user_can: set[str] | None = None) -> None:
        self.agent_can = agent_can if agent_can is not None else set()
        self.user_can = user_can if user_can is not None else set()
        self.users_can: dict[str, set[str]] = {}
        self.resource = FakeResource()
        self.document: dict[str, Any] = {"status": "Succeeded"}
        self.calls: list[tuple[str, str]] = []
        self.previews: list[tuple[str, str]] = []
        self.permission_reads: list[str] = []
        self.fail_with: ArmOutcome | None = None
        self.stop_host: str | None = None
        self.operations: dict[str, ArmOutcome] = {}  # operation URL -> how it ends
        self.client_request_ids: list[str | None] = []
        self.throttled = 0  # writes answered 429 (nothing done) before one goes through
        self.throttles: list[str] = []

    def resume(self, operation: ArmOperation, credential: Any) -> ArmOutcome:
        credential.get_token("https://management.azure.com/.default")
        self.calls.append(("resume", credential.identity))
        return self.operations[operation.async_operation or ""]

    def _stop(self, point: str) -> None:
        if self.stop_host == point:
            self.stop_host = None
            raise HostStopped(point)

    def perform(self, action: ActionSpec, resource_id: str, parameters: dict[str, Any], credential: Any, *,
                client_request_id: str | None = None,
                on_accepted: Callable[[ArmOperation], None] | None = None,
                may_retry: Callable[[], bool] | None = None) -> ArmOutcome:
        # `throttled` writes are answered 429 first; each retry is a new call, made only if `may_retry` lets it.
        while action.kind.value == "write" and self.throttled:
            self.throttled -= 1
            self.throttles.append(action.name)
            if may_retry is not None and not may_retry():
                return ArmOutcome(OutcomeKind.NOT_SENT, 429, "KillSwitchThrown", "not sent again")
        outcome = self._perform(action, credential)
        if action.name.endswith(".preview") or action.path_suffix.endswith("/Microsoft.Authorization/permissions"):
            return outcome  # the reads around a step, not the step's own call
        self.client_request_ids.append(client_request_id)
        self._stop("before_answer")
        if action.long_running and outcome.kind is OutcomeKind.SUCCEEDED and on_accepted is not None:
            url = f"https://arm.fake/operations/{len(self.operations) + 1}"
            self.operations[url] = outcome
            started = f"https://arm.fake{action.request_path(resource_id, parameters)}"
            on_accepted(ArmOperation(action.method, started, 202, url, None, f"request-{len(self.operations)}",
                                     client_request_id or "", client_request_id or ""))
            self._stop("after_accept")
        return outcome

    def _perform(self, action: ActionSpec, credential: Any) -> ArmOutcome:
        identity = credential.identity
        credential.get_token("https://management.azure.com/.default")
        allowed = self.agent_can if identity == "agent" else self.users_can.get(identity, self.user_can)
        if action.path_suffix.endswith("/providers/Microsoft.Authorization/permissions"):
            self.permission_reads.append(identity)
            return ArmOutcome(OutcomeKind.SUCCEEDED, 200, body={"value": [{"actions": sorted(allowed),
                                                                           "notActions": []}]})
        if action.name.endswith(".preview"):
            self.previews.append((action.name, identity))
            return ArmOutcome(OutcomeKind.SUCCEEDED, 200, body=copy.deepcopy(self.document))
        self.calls.append((action.name, identity))
        if action.permission not in allowed:
            return ArmOutcome(OutcomeKind.SECURITY_CHALLENGE, 403, "AuthorizationFailed",
                              f"'{identity}' may not perform {action.permission}")
        if self.fail_with is not None:
            return self.fail_with
        if action.kind.value == "write":
            self.resource.executed.append((action.name, identity))
        else:
            self.resource.reads.append((action.name, identity))
        return ArmOutcome(OutcomeKind.SUCCEEDED, 200, body=copy.deepcopy(self.document))


class FakeTokenBroker:
    def __init__(self) -> None:
        self.exchanges: list[str] = []
        self.refuse_with: str | None = None
        self.issued: list[FakeCredential] = []

    def agent_credential(self) -> FakeCredential:
        return FakeCredential("agent")

    def on_behalf_of(self, user_assertion: str, claims: str | None = None) -> FakeCredential:
        self.exchanges.append(user_assertion)
        if self.refuse_with:
            raise CredentialUnavailable(self.refuse_with)
        payload = user_assertion.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        credential = FakeCredential(f"user:{claims['preferred_username'].split('@')[0]}")
        self.issued.append(credential)
        return credential


class FakeNotifier:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, to: Sequence[str], subject: str, text: str, html: str) -> None:
        self.sent.append({"to": list(to), "subject": subject, "text": text, "html": html})
