"""The ports the gates talk through. Adapters in `shared/adapters` implement them for Azure; tests
use the in-memory fakes in `tests/fakes.py`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from azure.core.credentials import TokenCredential

from shared.core.alert_status import AlertStatus
from shared.core.arm_outcomes import ArmOutcome
from shared.core.catalog import ActionSpec
from shared.core.change import Change
from shared.core.correlation import replay_of
from shared.core.limits import LimitClaim, Liveness
from shared.core.model import ArmOperation, AuditEvent, OutboundMessage, Run, RunState
from shared.core.pause import KillSwitch, SwitchChange, SwitchEntry


@dataclass(frozen=True)
class RunSummary:
    """A run as a list shows it; read from the run index, without loading the run."""

    run_id: str
    state: RunState
    plan_name: str
    resource_id: str
    alert_rule: str
    severity: str
    created_at: dt.datetime
    updated_at: dt.datetime
    outcome: str = ""
    # What the guardrails decided (`Run.guardrails`), so that the shadow report reads only the index.
    effect: str = ""  # allow / ask / deny; "" for a run with no verdict (an unmatched alert)
    decided_by: str = ""
    writes: bool = False  # the plan writes: an allowed run with writes acts autonomously
    credentials: str = ""  # a shadow run's: "needed", "not needed" or "unknown"; "" otherwise
    replay: str = ""  # the replay that made the run (its correlation namespace), "" for a real alert's
    ended_at: dt.datetime | None = None  # None while open; ended runs are listed newest ended first

    @staticmethod
    def of(run: Run) -> RunSummary:
        # An alert may name no rule or severity (a budget alert): the index keeps "" for them. A proposed plan
        # has no alert: its list row names the agent where an alert's rule would be.
        if run.alert is not None:
            rule, severity = run.alert.rule_name or "", run.alert.severity or ""
        else:
            rule, severity = (f"agent:{run.proposal.agent_name}" if run.proposal else ""), ""
        record = run.guardrails or {}
        credentials = ""
        if record.get("shadow"):
            credentials = ("unknown" if not record.get("credentials_known")
                           else "needed" if record.get("credentials_needed") else "not needed")
        return RunSummary(run.run_id, run.state, run.plan_name, run.resource_id, rule, severity, run.created_at,
                          run.updated_at, run.outcome, effect=str(record.get("effect", "")),
                          decided_by=str(record.get("decided_by", "")), writes=any(s.is_write for s in run.steps),
                          credentials=credentials, replay=replay_of(run.correlation_key), ended_at=run.ended_time)


@dataclass(frozen=True)
class RunPage:
    runs: tuple[RunSummary, ...]
    continuation: str | None  # give it back for the next page; None on the last page


MAX_JOINS_AT_ONCE = 99  # an entity-group transaction holds 100 operations: the joins and the run's marker


class JoinResult(Enum):
    """What became of a repeat firing recorded without reading its run (`RunStore.record_join_if_open`)."""

    JOINED = "joined"  # recorded beside the run, which still takes repeats
    DUPLICATE = "duplicate"  # recorded already, by an earlier delivery of the same firing
    NOT_OPEN = "not open"  # nothing written: the run ended (or predates the marker); decide on the run itself


@dataclass(frozen=True)
class OpenRun:
    run_id: str
    indexed_at: dt.datetime


class RunStore(Protocol):
    """A run and its audit trail in one partition, written in one transaction; beside them, an index of
    open and ended runs, so that listing and sweeping cost what they return, not what history holds."""

    def get_run(self, run_id: str) -> Run | None: ...

    def create_run(self, change: Change) -> bool:
        """Index the run as open, then write it with its audit; False if the run already exists."""

    def commit(self, change: Change) -> Run:
        """Write `change` if the run is unchanged since `change.run.etag` was read (else
        `ConcurrencyConflict`); returns the run with its new etag."""

    def mark_ended(self, run: Run) -> None:
        """Move a terminal run from the open index to the ended index, where it is kept by the time it
        ended (`Run.ended_time`), so marking it again, even after a later change, writes the same rows."""

    def open_runs(self) -> list[OpenRun]:
        """Every run indexed as open: each open run is here (it is indexed before it is written)."""

    def drop_open(self, run_id: str) -> None:
        """Forget an open-index entry whose run was never written."""

    def move_undated_ended(self) -> int:
        """Move a sweep's share of ended-index entries left in an earlier layout of the index (one that
        grew with history) to where lists read them; the number moved, 0 once none is left."""

    def list_runs(self, state: RunState | None = None, limit: int = 100,
                  continuation: str | None = None) -> RunPage:
        """Runs newest first, by state: an ended state is one index read a page (two where a page
        crosses from one day's partition to the next), however many runs history holds; open runs are
        read themselves (there are few). `ValueError` for a continuation this store did not issue."""

    def ended_between(self, state: RunState | None, since: dt.datetime, until: dt.datetime, limit: int = 500,
                      continuation: str | None = None) -> RunPage:
        """Runs that ended in `state` (None: in any state) in [since, until), newest first: one index range
        read a page. `ValueError` for a continuation this store did not issue."""

    def list_audit(self, run_id: str) -> list[AuditEvent]:
        """The run's audit lines in the order they happened, the repeats recorded beside it included."""

    def record_join(self, run_id: str, key: str, event: AuditEvent) -> bool:
        """Record a repeat firing beside the run (insert-if-absent on `key`); False for a duplicate."""

    def record_join_if_open(self, run_id: str, key: str, event: AuditEvent) -> JoinResult:
        """Record a repeat firing beside the run only while the run takes repeats, in one request: the
        run's marker (written with the run when it opens, or with a shadow run, and removed by the change
        that ends it, `Change.ends_run`) is touched in the same transaction as the insert-if-absent of
        the join line. A duplicate of the line wins over an ended run (a repeat the run took, again)."""

    def record_joins_if_open(self, run_id: str, joins: Sequence[tuple[str, AuditEvent]]) -> JoinResult:
        """Several repeats of one run (distinct keys, at most `MAX_JOINS_AT_ONCE`) as one transaction, all
        or none: JOINED when every line was written, DUPLICATE when any of them was there already and
        NOT_OPEN when the run no longer takes repeats (then nothing was written; record them one by one)."""

    def joined_alerts(self, run_id: str) -> frozenset[str]:
        """The alert keys of the repeats recorded beside the run."""

    def join_recorded(self, run_id: str, key: str) -> bool: ...

    def mark_paused(self, run_id: str) -> None:
        """Index a run as paused by the kill switch; written before the pause is, so none is missing."""

    def paused_runs(self) -> list[str]:
        """Every run indexed as paused (some may have resumed since: the caller reads each one)."""

    def drop_paused(self, run_id: str) -> None:
        """Forget a paused-index entry once its run resumed (or never paused); idempotent."""

    def request_resend(self, run_id: str) -> None:
        """Note that a run's outbox may not have been sent (a send failed where nothing redelivers)."""

    def resend_requests(self) -> list[str]: ...

    def clear_resend(self, run_id: str) -> None: ...


class SwitchStore(Protocol):
    """The kill switch, one entity, beside its own audit lines (in one partition)."""

    def get(self) -> KillSwitch:
        """The switch as stored, by one point read (never cached); `LIFTED` when never thrown."""

    def put(self, change: SwitchChange) -> KillSwitch:
        """Write the switch on the etag it was read with (none: insert if absent) and the change's audit
        line, in one transaction; `ConcurrencyConflict` when it changed since. Returns it with its etag."""

    def history(self, limit: int = 20) -> list[SwitchEntry]:
        """The switch's audit lines, newest first."""


@dataclass(frozen=True)
class Correlation:
    key: str
    run_id: str
    opened_at: dt.datetime
    etag: str
    # The runs it named before, newest first (a few): where an accepted alert's status finds the run it
    # joined or started after a newer run took the key (GET /api/alerts/{key}).
    earlier: tuple[str, ...] = ()


class CorrelationStore(Protocol):
    def get(self, key: str) -> Correlation | None: ...

    def get_fresh(self, key: str) -> Correlation | None:
        """As `get`, read from the table itself, never from a memory in front of it."""

    def get_known(self, key: str) -> Correlation | None:
        """As `get`, where that takes no request (a memory in front of the table); None otherwise."""

    def create(self, key: str, run_id: str, opened_at: dt.datetime) -> Correlation | None:
        """Insert-if-absent: the row as written (with the ETag the write got), None when another alert of
        the same rule and resource got there first."""

    def replace(self, current: Correlation, run_id: str, opened_at: dt.datetime) -> Correlation | None:
        """Point the key at a new run if it still holds `current` (ETag), keeping `current.run_id` first
        among the runs it named before: the row as written (with its new ETag), None if it changed."""


class RejectedAlertStore(Protocol):
    """Alerts that could not be read, newest first, each with the reason."""

    def add(self, message_id: str, reason: str, body: str, received_at: dt.datetime) -> None: ...

    def list_page(self, limit: int, continuation: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Up to `limit` rows newest first, and the token of the next page (None after the last);
        `InvalidContinuation` for a token this store did not hand out."""


class InvalidContinuation(ValueError):
    """A continuation token that is not one the store handed out."""


class AlertStatusStore(Protocol):
    """Each accepted alert's status under its key (`shared/core/alert_status.py`): point reads only."""

    def get(self, key: str) -> AlertStatus | None: ...

    def add(self, status: AlertStatus) -> bool:
        """Insert if absent: False when the key is known already."""

    def put(self, status: AlertStatus) -> None: ...


class LimitStore(Protocol):
    """Blast-radius counters (`shared/core/limits.py`), shared by every instance: each counter is changed
    only by a conditional write on the version it was read at."""

    def claim(self, claim: LimitClaim, now: dt.datetime, live: Liveness | None = None) -> bool:
        """Take the claim's place if it fits (a member already there fits and is not written again);
        False if the counter is full. `live` is asked about an in-flight counter's runs only when it is
        full. `ConcurrencyConflict` after losing the write race a bounded number of times."""

    def release(self, claims: Sequence[LimitClaim]) -> None:
        """Give the claims' places back (idempotent: a member not there is left alone)."""


class MessageTooLarge(Exception):
    """The queue refused a message as larger than the namespace allows."""


class MessageBus(Protocol):
    def send(self, messages: Sequence[OutboundMessage]) -> None: ...


class ResourceManager(Protocol):
    def perform(self, action: ActionSpec, resource_id: str, parameters: dict[str, Any],
                credential: TokenCredential, *, client_request_id: str | None = None,
                on_accepted: Callable[[ArmOperation], None] | None = None,
                may_retry: Callable[[], bool] | None = None) -> ArmOutcome:
        """Run the action; an operation ARM accepts goes to `on_accepted` before it is followed. A write
        ARM throttled is sent again only while `may_retry` says so (else: `OutcomeKind.NOT_SENT`)."""

    def resume(self, operation: ArmOperation, credential: TokenCredential) -> ArmOutcome:
        """Follow an operation ARM accepted earlier to its end; never sends the action again."""


class CredentialUnavailable(Exception):
    """The on-behalf-of exchange did not yield a token; `reason` is safe to log (no token in it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DelegatedCredential(TokenCredential, Protocol):
    def revoke(self) -> None:
        """Drop the token; the credential refuses to hand it out afterwards."""


class TokenBroker(Protocol):
    def agent_credential(self) -> TokenCredential: ...

    def on_behalf_of(self, user_assertion: str, claims: str | None = None) -> DelegatedCredential:
        """A credential good for one use, holding an ARM token for the assertion's user."""


class Notifier(Protocol):
    def send(self, to: Sequence[str], subject: str, text: str, html: str) -> None: ...


class Sealer(Protocol):
    def seal(self, plaintext: str, context: str) -> str: ...

    def unseal(self, sealed: str, context: str) -> str: ...


class SigningKeys(Protocol):
    def key_for(self, token: str) -> Any:
        """The public key that signed `token` (by its `kid`), from the issuer's JWKS."""


class Clock(Protocol):
    def now(self) -> dt.datetime: ...
