"""The nouns of the product as plain, immutable data."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Mode(StrEnum):
    REVIEW = "review"
    AUTONOMOUS = "autonomous"
    READ_ONLY = "read-only"


class ActionKind(StrEnum):
    READ = "read"
    WRITE = "write"


class RunState(StrEnum):
    AWAITING_CONSENT = "awaiting_consent"
    RUNNING = "running"
    AWAITING_CREDENTIALS = "awaiting_credentials"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    UNMATCHED = "unmatched"
    DRIFTED = "drifted"  # the resource changed after consent and its new state was not approved
    SHADOWED = "shadowed"  # decided in shadow mode: recorded what would have happened, acted on nothing
    PAUSED = "paused"  # the kill switch stopped it before its next ARM call; it resumes when the switch is lifted

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_RUN_STATES


TERMINAL_RUN_STATES = frozenset({
    RunState.SUCCEEDED, RunState.FAILED, RunState.DENIED, RunState.EXPIRED, RunState.CANCELLED, RunState.UNMATCHED,
    RunState.DRIFTED, RunState.SHADOWED,
})


class StepState(StrEnum):
    PENDING = "pending"
    ATTEMPTING = "attempting"  # claimed; running with the agent's own identity
    AWAITING_CREDENTIALS = "awaiting_credentials"
    EXECUTING = "executing"  # claimed; running with a person's delegated credential
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # never run because the run ended first


class RequestKind(StrEnum):
    CONSENT = "consent"
    CREDENTIALS = "credentials"


class RequestState(StrEnum):
    PENDING = "pending"
    GRANTED = "granted"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Decision(StrEnum):
    APPROVE = "approve"
    DENY = "deny"


class CredentialSource(StrEnum):
    AGENT = "agent"
    DELEGATED = "delegated"  # a person's, through the on-behalf-of flow


@dataclass(frozen=True)
class Actor:
    """Who did something: a person, a response plan (autonomous consent), the agent or the system."""

    kind: str  # "person" | "plan" | "agent" | "system"
    id: str
    name: str

    @staticmethod
    def person(object_id: str, name: str) -> Actor:
        return Actor("person", object_id, name)

    @staticmethod
    def plan(plan_name: str, version: int) -> Actor:
        return Actor("plan", f"{plan_name}@v{version}", f"response plan {plan_name} (v{version})")

    @staticmethod
    def system(reason: str = "sre-gates") -> Actor:
        return Actor("system", reason, reason)

    @staticmethod
    def agent() -> Actor:
        return Actor("agent", "agent", "SRE agent (own identity)")


@dataclass(frozen=True)
class Approver:
    """A person a plan names. With an object id, only that Entra object may decide (names can be reused);
    the sign-in name is where the e-mail goes."""

    upn: str
    object_id: str | None = None

    def matches(self, object_id: str, sign_in_name: str) -> bool:
        if self.object_id:
            return self.object_id.lower() == object_id.lower()
        return self.upn.lower() == sign_in_name.lower()


@dataclass(frozen=True)
class Alert:
    """What the product needs from an Azure Monitor common-schema alert."""

    alert_id: str
    rule_id: str  # the rule's id, else its name, else (no rule: a budget alert) the alert's id
    rule_name: str | None  # None when the alert names no rule (budget alerts)
    severity: str | None  # "Sev0" .. "Sev4"; None when the alert carries none (budget alerts)
    condition: str  # "Fired" | "Resolved"
    fired_at: dt.datetime
    target_resource_ids: tuple[str, ...]  # resources, resource groups or subscriptions; may be empty
    description: str = ""
    custom_properties: dict[str, str] = field(default_factory=dict)
    monitoring_service: str = ""  # "Platform", "Log Alerts V2", "ServiceHealth", "CostAlerts", ...

    @property
    def target_resource_id(self) -> str:
        return self.target_resource_ids[0]

    @property
    def summary(self) -> str:
        """How people see the alert: its rule and severity, or what sent it when it has neither."""
        name = self.rule_name or f"{self.monitoring_service or 'unnamed'} alert"
        return f"{name} ({self.severity})" if self.severity else name


@dataclass(frozen=True)
class Proposal:
    """Where a plan an agent proposed came from: the agent (its Entra client id), why, for whom.

    A run has an alert or a proposal, never both: alert-driven runs are unchanged."""

    agent_id: str  # the calling application's client (app) id, from its validated token
    agent_name: str  # the agents policy entry that admitted the plan
    idempotency_key: str
    fingerprint: str  # the plan the key was first used with; the same key with another plan is refused
    rationale: str
    reference: str = ""  # an alert or incident the plan answers, as the agent names it
    requester: Approver | None = None  # the person who prompted the agent, when it names one


@dataclass(frozen=True)
class ArmOperation:
    """A write ARM accepted and carries out on its own: where to ask how it ended, and the ids that find
    it in the activity log. Recorded before it is followed, so a host that dies while following it leaves
    enough behind for the next delivery to follow it to its end instead of guessing."""

    method: str
    url: str  # the request that started it
    status: int  # ARM's first answer: 201, 202, or 200 naming an operation
    async_operation: str | None  # the Azure-AsyncOperation URL, followed first
    location: str | None  # the Location URL
    request_id: str  # ARM's x-ms-request-id for the accepting request
    client_request_id: str  # the app's x-ms-client-request-id; polling goes on under the same id
    correlation_id: str  # x-ms-correlation-request-id: what the activity log is searched by


@dataclass(frozen=True)
class Step:
    index: int
    action: str
    kind: ActionKind
    permission: str
    parameters: dict[str, Any] = field(default_factory=dict)
    state: StepState = StepState.PENDING
    credential_source: CredentialSource | None = None
    claim_message_id: str | None = None
    claim_delivery: int = 0
    outcome: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    claims: str | None = None  # ARM's claims challenge, passed on to every on-behalf-of request for this step
    permissions: tuple[str, ...] = ()  # every permission the action needs; `permission` is the primary one
    # The id the app sends ARM with the write (x-ms-client-request-id and x-ms-correlation-request-id),
    # written with the claim, so it is known even when no answer ever came.
    client_request_id: str | None = None
    operation: ArmOperation | None = None  # set once ARM accepted the write, before it is followed

    @property
    def all_permissions(self) -> tuple[str, ...]:
        return self.permissions or (self.permission,)

    @property
    def is_write(self) -> bool:
        return self.kind is ActionKind.WRITE


class CommentRule(StrEnum):
    """When a decision must carry a reason, as a plan says."""

    OPTIONAL = "optional"
    TO_DENY = "to-deny"
    ALWAYS = "always"


@dataclass(frozen=True)
class ApprovalRule:
    """How a plan's requests are decided: by the first answer (a quorum of 1, the default), or by N
    distinct approvers consenting (any deny ends the run); and when a reason is required."""

    quorum: int = 1
    comment: CommentRule = CommentRule.OPTIONAL
    remind_at: float | None = None  # the fraction of the time to the deadline at which to remind
    escalate_to: tuple[Approver, ...] = ()  # asked too, at the reminder, when nobody has decided yet


@dataclass(frozen=True)
class Vote:
    """One person's answer to a request, with their reason and where it came from."""

    actor: Actor
    decision: Decision
    at: dt.datetime
    comment: str = ""
    channel: str = ""  # "browser" | "api" | "mcp"


@dataclass(frozen=True)
class FieldPreview:
    """One field a write will change, as read just before consent was asked: before → after."""

    field: str  # a JSON pointer into the preview read
    label: str
    before: Any
    after: Any


@dataclass(frozen=True)
class StepPreview:
    """What a write step will change, read from the resource; `unavailable` says why it could not be read."""

    step: int
    action: str
    fields: tuple[FieldPreview, ...] = ()
    unavailable: str = ""


@dataclass(frozen=True)
class Request:
    """A question put to people: consent to the plan, or temporary credentials for one step."""

    request_id: str
    kind: RequestKind
    deadline: dt.datetime
    approvers: tuple[Approver, ...]
    plan_hash: str
    step_index: int | None = None
    state: RequestState = RequestState.PENDING
    decided_by: Actor | None = None
    decided_at: dt.datetime | None = None
    reason: str = ""
    claims: str | None = None  # a claims challenge from ARM, passed on to the on-behalf-of request
    sealed_assertion: str | None = None  # ciphertext only, and only between grant and use
    previews: tuple[StepPreview, ...] = ()  # consent: what each write will change, as the approver saw it
    rule: ApprovalRule = ApprovalRule()
    votes: tuple[Vote, ...] = ()  # every answer, in order; the last one decided the request
    reminded: bool = False
    covers: tuple[int, ...] = ()  # a credential grant's steps: the challenged one and later ones it serves

    @property
    def steps_covered(self) -> tuple[int, ...]:
        return self.covers or ((self.step_index,) if self.step_index is not None else ())

    @property
    def comment(self) -> str:
        """The reason given with the answer that decided the request."""
        return self.votes[-1].comment if self.votes and self.state is not RequestState.PENDING else ""

    def approvals(self) -> tuple[Vote, ...]:
        return tuple(v for v in self.votes if v.decision is Decision.APPROVE)


@dataclass(frozen=True)
class Pause:
    """Why a run waits in `paused`: the kill switch as it stood when the run stopped (its reason, who
    threw it and when), when the run stopped, and where it goes back to when the switch is lifted."""

    reason: str
    thrown_by: Actor
    thrown_at: dt.datetime
    paused_at: dt.datetime
    resume_to: RunState  # RUNNING (a step was about to call ARM) or AWAITING_CONSENT (previews to read)
    step: int | None = None


@dataclass(frozen=True)
class Run:
    run_id: str
    state: RunState
    mode: Mode
    plan_name: str
    plan_version: int
    runbook: str
    resource_id: str
    alert: Alert | None  # None for a plan an agent proposed (see `proposal`)
    steps: tuple[Step, ...]
    approvers: tuple[Approver, ...]
    notify: tuple[str, ...]
    created_at: dt.datetime
    updated_at: dt.datetime
    requested_mode: Mode = Mode.REVIEW
    correlation_key: str = ""
    approval: ApprovalRule = ApprovalRule()  # the plan's, when the run started
    requests: tuple[Request, ...] = ()
    alert_ids: tuple[str, ...] = ()
    outcome: str = ""
    audit_seq: int = 0
    # The outbox: the messages the last change that sent any must be followed by, written with it and
    # sent after; `last_trigger` names the delivery that made that change, so its redelivery (after a
    # host died between the write and the send) sends them again.
    outbox: tuple[OutboundMessage, ...] = ()
    last_trigger: str | None = None
    etag: str | None = None  # the store's concurrency token; never part of a decision
    proposal: Proposal | None = None
    # Who is asked for credentials, when not the approvers (a proposal's requester: their own rights).
    credential_approvers: tuple[Approver, ...] = ()
    # What the guardrails decided when the run started, and why (`Verdict.as_record()`).
    guardrails: dict[str, Any] | None = None
    pause: Pause | None = None  # set while the run is paused by the kill switch
    pauses: int = 0  # how often it was paused: each resume's message gets an id of its own
    # A consent given before this time lapsed while the run was paused (paused longer than consent
    # lasts): it no longer counts, and consent is asked again.
    consent_lapsed_at: dt.datetime | None = None
    # When the run ended: set by the change that made it terminal and never moved by a later one (a repeat
    # a shadowed run absorbs moves `updated_at`), so whatever indexes it as ended writes the same rows.
    ended_at: dt.datetime | None = None

    @property
    def ended_time(self) -> dt.datetime | None:
        """When the run ended, None while it is open; a run kept without `ended_at` (stored before runs
        had it, or made by hand) ended at its last change."""
        if not self.state.is_terminal:
            return None
        return self.ended_at or self.updated_at

    @property
    def source_label(self) -> str:
        """What started the run, in a few words, for pages and mail."""
        if self.alert is not None:
            return f"alert {self.alert.summary}"
        if self.proposal is not None:
            return f"plan proposed by agent {self.proposal.agent_name}"
        return "unknown"

    def request(self, request_id: str) -> Request | None:
        return next((r for r in self.requests if r.request_id == request_id), None)

    def current_step(self) -> Step | None:
        return next((s for s in self.steps if s.state not in (StepState.SUCCEEDED, StepState.SKIPPED)), None)

    def pending_request(self) -> Request | None:
        return next((r for r in self.requests if r.state is RequestState.PENDING), None)


@dataclass(frozen=True)
class AuditEvent:
    """One append-only line of the audit trail: who, what, when, why."""

    seq: int
    event: str
    at: dt.datetime
    actor: Actor
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboundMessage:
    """A message that must follow a state change; stored with it, sent after."""

    queue: str
    message_id: str
    body: dict[str, Any]
    correlation_id: str
    scheduled_for: dt.datetime | None = None
    properties: dict[str, str] = field(default_factory=dict)  # application properties (a replay's marker)
