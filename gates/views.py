"""What a person is shown, as plain data built from a run: the templates only lay it out.

A page (and an e-mail) answers, on the first phone screen: what will happen, to which resource, why
(the alert), who or what asked, the risk, the time left, and what each choice does. Everything here is
a pure function of the run, the request, the audit and the time, so it is tested without a browser.

The action catalog is growing risk, impact and before → after previews; they are shown when an
action declares them and left out when it does not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.core.catalog import ActionSpec, resource_group_of, resource_type_of, subscription_of
from shared.core.model import (
    AuditEvent,
    CommentRule,
    Decision,
    Request,
    RequestKind,
    RequestState,
    Run,
    RunState,
    Step,
    StepPreview,
    StepState,
)
from shared.core.previews import describe as describe_preview
from shared.core.previews import lines as preview_lines
from shared.core.steps import unknown_outcome
from shared.ports import RunSummary

HIGH_RISK = frozenset({"high", "critical"})
RISK_ORDER = ("low", "medium", "high", "critical")


# -------------------------------------------------------------------------------------------- time


@dataclass(frozen=True)
class Moment:
    utc: str  # "21:00 UTC", or "30 Nov 21:00 UTC" when not today
    relative: str  # "in 27 min", "12 min ago", "just now"
    iso: str

    @property
    def text(self) -> str:
        return f"{self.utc} ({self.relative})"


def relative(delta: dt.timedelta) -> str:
    """`delta` is the moment minus now: positive is ahead."""
    seconds = delta.total_seconds()
    ahead = seconds > 0
    seconds = abs(seconds)
    if seconds < 45:
        return "just now" if not ahead else "in under a minute"
    minutes = round(seconds / 60)
    if minutes < 90:
        amount = f"{minutes} min"
    elif minutes < 36 * 60:
        hours, rest = divmod(minutes, 60)
        amount = f"{hours} h {rest} min" if rest and hours < 6 else f"{round(minutes / 60)} h"
    else:
        amount = f"{round(minutes / 1440)} days"
    return f"in {amount}" if ahead else f"{amount} ago"


def moment(value: dt.datetime, now: dt.datetime) -> Moment:
    value = value.astimezone(dt.UTC)
    same_day = value.date() == now.astimezone(dt.UTC).date()
    utc = value.strftime("%H:%M UTC") if same_day else f"{value.day} {value.strftime('%b %H:%M UTC')}"
    return Moment(utc=utc, relative=relative(value - now), iso=value.isoformat(timespec="seconds"))


def time_left(deadline: dt.datetime, now: dt.datetime) -> str:
    seconds = (deadline - now).total_seconds()
    if seconds <= 0:
        return "deadline passed"
    if seconds < 60:
        return "under 1 min left"
    return relative(deadline - now).removeprefix("in ") + " left"


# ---------------------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class Resource:
    id: str
    name: str
    group: str
    subscription: str
    type: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.group})" if self.group else self.name


def resource(resource_id: str) -> Resource:
    return Resource(id=resource_id, name=resource_id.rstrip("/").rsplit("/", 1)[-1],
                    group=resource_group_of(resource_id), subscription=subscription_of(resource_id),
                    type=resource_type_of(resource_id))


# -------------------------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class StepView:
    number: int  # 1-based, as people count
    action: str
    verb: str  # "Restart", "Set capacity"
    description: str
    kind: str
    permission: str
    state: str
    parameters: str
    risk: str = ""
    impact: str = ""
    changes: tuple[str, ...] = ()  # "power state: running → restarting", from the preview read
    highlight: bool = False

    @property
    def is_write(self) -> bool:
        return self.kind == "write"


def verb_of(action: str) -> str:
    """`vm.restart` -> "Restart"; `vmss.set_capacity` -> "Set capacity"."""
    words = action.rsplit(".", 1)[-1].replace("_", " ").strip()
    return words[:1].upper() + words[1:]


Catalog = Mapping[str, ActionSpec]


def step_view(step: Step, catalog: Catalog, previews: tuple[StepPreview, ...] = (),
              highlight: bool = False) -> StepView:
    spec = catalog.get(step.action)
    params = ", ".join(f"{k} {v}" for k, v in sorted(step.parameters.items()))
    preview = next((p for p in previews if p.step == step.index), None)
    return StepView(
        number=step.index + 1, action=step.action, verb=verb_of(step.action),
        description=spec.description if spec else step.action, kind=step.kind.value, permission=step.permission,
        state=step.state.value, parameters=params, risk=_risk_of(spec) if step.is_write else "",
        impact=_text(getattr(spec, "impact", None)) if step.is_write else "",
        changes=_changes(preview), highlight=highlight,
    )


def _changes(preview: StepPreview | None) -> tuple[str, ...]:
    """What a write will change, before → after, as read from the resource when consent was asked."""
    return tuple(preview_lines((preview,))) if preview is not None else ()


def _risk_of(spec: object) -> str:
    risk = getattr(spec, "risk", None)
    return str(getattr(risk, "value", risk)).lower() if risk else ""


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _plain(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def highest_risk(risks: Iterable[str]) -> str:
    known = [r for r in risks if r]
    return max(known, key=lambda r: RISK_ORDER.index(r) if r in RISK_ORDER else -1) if known else ""


# -------------------------------------------------------------------------------------- the question


def asked_steps(run: Run, request: Request) -> tuple[Step, ...]:
    """The steps a decision covers: the writes for consent, the challenged step for credentials."""
    if request.kind is RequestKind.CREDENTIALS:
        covered = request.steps_covered
        return tuple(s for s in run.steps if s.index in covered)
    writes = tuple(s for s in run.steps if s.is_write)
    return writes or run.steps


def action_phrase(run: Run, steps: Iterable[Step]) -> str:
    """"Restart vm-web-01": the verbs of the steps asked about, then the resource's name."""
    verbs: list[str] = []
    for step in steps:
        verb = verb_of(step.action)
        if verb.lower() not in (v.lower() for v in verbs):
            verbs.append(verb)
    if not verbs:
        verbs = ["Act on"]
    joined = verbs[0] + "".join(f" and {v[:1].lower()}{v[1:]}" for v in verbs[1:])
    preposition = " on" if len(verbs) == 1 and " " in verbs[0] else ""
    return f"{joined}{preposition} {resource(run.resource_id).name}"


DECIDED_WORDS = {
    (RequestKind.CONSENT, RequestState.GRANTED): "consent given",
    (RequestKind.CONSENT, RequestState.DENIED): "consent refused",
    (RequestKind.CREDENTIALS, RequestState.GRANTED): "credentials granted",
    (RequestKind.CREDENTIALS, RequestState.DENIED): "credentials refused",
}


def outcome_words(request: Request) -> str:
    """The words a decision deserves: "credentials granted", not "approved"."""
    if request.state is RequestState.EXPIRED:
        return "expired unanswered"
    if request.state is RequestState.CANCELLED:
        return "cancelled"
    if request.state is RequestState.PENDING:
        return "waiting for a decision"
    return DECIDED_WORDS[(request.kind, request.state)]


@dataclass(frozen=True)
class Headline:
    verb: str  # "Restart"
    target: str  # "vm-web-01"
    group: str  # "rg-prod-web"
    ending: str  # "?", " with your access?", or ":" before the outcome
    alert: str  # "Sev1 vm-not-responding"
    status: str  # "27 min left" or "credentials granted by alice@contoso.test at 21:03 UTC"
    settled: bool

    @property
    def question(self) -> str:
        """The question, e.g. "Restart vm-web-01 (rg-prod-web)?"."""
        group = f" ({self.group})" if self.group else ""
        return f"{self.verb} {self.target}{group}{self.ending}"

    @property
    def text(self) -> str:
        return f"{self.question} · {self.alert} · {self.status}"



def _tag(run: Run) -> str:
    """What an e-mail subject is tagged with: the alert's severity, or that an agent proposed the plan."""
    if run.alert is not None and run.alert.severity:
        return f"[{run.alert.severity}] "
    return "[agent plan] " if run.proposal is not None else ""


def _alert_line(run: Run) -> str:
    if run.alert is not None:
        return " ".join(part for part in (run.alert.severity, run.alert.rule_name) if part)
    return run.source_label


def _why(run: Run) -> str:
    if run.alert is not None:
        return run.alert.description.strip()
    return run.proposal.rationale.strip() if run.proposal is not None else ""

def headline(run: Run, request: Request, now: dt.datetime) -> Headline:
    where = resource(run.resource_id)
    verb = action_phrase(run, asked_steps(run, request)).removesuffix(f" {where.name}")
    ending = " with your access" if request.kind is RequestKind.CREDENTIALS else ""
    alert = _alert_line(run)
    if request.state is RequestState.PENDING:
        return Headline(verb, where.name, where.group, f"{ending}?", alert, time_left(request.deadline, now),
                        settled=False)
    status = outcome_words(request)
    if request.decided_by is not None and request.state in (RequestState.GRANTED, RequestState.DENIED):
        status += f" by {request.decided_by.name}"
    at = request.decided_at or (request.deadline if request.state is RequestState.EXPIRED else run.updated_at)
    status += f" at {moment(at, now).utc}"
    return Headline(verb, where.name, where.group, f"{ending}:", alert, status, settled=True)


@dataclass(frozen=True)
class Choice:
    label: str
    effect: str


@dataclass(frozen=True)
class Choices:
    approve: Choice
    deny: Choice
    confirm: bool  # a high-risk action asks once more before it is recorded
    risk: str


def choices(run: Run, request: Request, catalog: Catalog) -> Choices:
    where = resource(run.resource_id)
    steps = asked_steps(run, request)
    phrase = action_phrase(run, steps)
    risk = highest_risk(step_view(s, catalog).risk for s in steps)
    nothing = "The run ends and nothing is changed."
    if request.kind is RequestKind.CONSENT:
        order = ", then ".join(verb_of(s.action).lower() for s in run.steps)
        approve = Choice(f"Approve: {phrase[:1].lower()}{phrase[1:]}",
                         f"The agent runs {_count(len(run.steps), 'step')} on {where.name} ({order}), with its "
                         "own identity first; if that lacks permission, you are asked for credentials.")
    else:
        numbers = " and ".join(str(s.index + 1) for s in steps)
        approve = Choice("Grant my access",
                         f"Your sign-in is exchanged (Entra on-behalf-of) for an Azure token used only for "
                         f"{'step' if len(steps) == 1 else 'steps'} {numbers} ({phrase[:1].lower()}{phrase[1:]}), "
                         "then discarded. It is never stored in clear text.")
    return Choices(approve=approve, deny=Choice("Deny", nothing), confirm=risk in HIGH_RISK, risk=risk)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def what_next(run: Run, request: Request) -> str:
    """What happens after a decision, in the words of the run's state."""
    if request.state is RequestState.PENDING:
        if request.approvals():
            return f"Waiting for more approvals ({quorum_text(request)}); any deny ends the run."
        return "Waiting for a decision."
    if run.state is RunState.RUNNING and request.kind is RequestKind.CONSENT:
        return "The agent now runs the plan with its own identity. If it lacks permission for a step, the " \
               "approvers are asked for credentials. You get an e-mail when the run ends."
    if run.state is RunState.RUNNING:
        return "The agent now runs the step with your access and discards it afterwards. You get an e-mail " \
               "when the run ends."
    if run.state is RunState.AWAITING_CREDENTIALS:
        return "The agent's own identity lacked permission for a step: the approvers are asked for credentials."
    if run.state is RunState.PAUSED:
        return "Your decision is recorded. The kill switch is thrown, so nothing is sent to Azure until it is " \
               "lifted; then the run goes on (asking again if your answer has lapsed by then)."
    if run.state.is_terminal:
        return f"The run has ended ({run.state.value}); nothing more will happen. Everyone asked is told."
    return "The run continues."


# ------------------------------------------------------------------------------------------- people


@dataclass(frozen=True)
class ApproverView:
    upn: str
    status: str
    is_viewer: bool


def approvers(request: Request, viewer_oid: str = "", viewer_name: str = "") -> list[ApproverView]:
    """Each person asked, with their answer and reason, in the words of the request."""
    views = []
    for approver in request.approvers:
        vote = next((v for v in reversed(request.votes) if approver.matches(v.actor.id, v.actor.name)), None)
        if vote is not None:
            word = APPROVED_WORDS[request.kind] if vote.decision is Decision.APPROVE else REFUSED_WORDS[request.kind]
            status = f"{word} at {vote.at.strftime('%H:%M UTC')}" + (f': "{vote.comment}"' if vote.comment else "")
        elif request.state is RequestState.PENDING:
            status = "asked, no answer yet"
        else:
            status = "asked; not needed any more"
        views.append(ApproverView(approver.upn, status, bool(viewer_oid) and approver.matches(viewer_oid, viewer_name)))
    return views


APPROVED_WORDS = {RequestKind.CONSENT: "approved", RequestKind.CREDENTIALS: "granted credentials"}
REFUSED_WORDS = {RequestKind.CONSENT: "denied", RequestKind.CREDENTIALS: "refused credentials"}


def quorum_text(request: Request) -> str:
    """"1 of 2 approvals" where a plan asks for more than one; empty otherwise."""
    if request.rule.quorum <= 1:
        return ""
    return f"{len(request.approvals())} of {request.rule.quorum} approvals"


def comment_hint(request: Request) -> str:
    rule = request.rule.comment
    return {CommentRule.OPTIONAL: " (optional)", CommentRule.TO_DENY: " (required to deny)",
            CommentRule.ALWAYS: " (required)"}[rule]


@dataclass(frozen=True)
class Origin:
    alert: str  # "vm-not-responding (Sev1) fired 20:31 UTC (29 min ago)"
    plan: str  # "response plan vm-not-responding v1, review mode"
    agent: str
    person: str  # the person who prompted the agent, for a proposed plan


def origin(run: Run, now: dt.datetime) -> Origin:
    if run.alert is None:
        proposal = run.proposal
        requester = proposal.requester.upn if proposal is not None and proposal.requester is not None else ""
        return Origin(
            alert=run.source_label + (f" (about {proposal.reference})" if proposal and proposal.reference else ""),
            plan=f"policy {run.plan_name} v{run.plan_version}, {run.mode.value} mode",
            agent=proposal.agent_name if proposal is not None else "SRE agent",
            person=requester,
        )
    fired = moment(run.alert.fired_at, now)
    return Origin(
        alert=f"{run.alert.summary} fired {fired.text}",
        plan=f"response plan {run.plan_name} v{run.plan_version}, runbook {run.runbook}, {run.mode.value} mode",
        agent="SRE agent",
        person="",
    )


# -------------------------------------------------------------------------------------------- pages


@dataclass(frozen=True)
class RequestPage:
    run_id: str
    request_id: str
    kind: str
    headline: Headline
    why: str
    origin: Origin
    resource: Resource
    steps: list[StepView]
    choices: Choices
    approvers: list[ApproverView]
    deadline: Moment
    state: str
    outcome: str
    what_next: str
    run_outcome: str
    reason: str
    comment: str
    quorum: str
    comment_hint: str
    comment_always: bool
    changes: list[str]  # "step 1 (vmss.set_capacity): instances 2 → 4", one line per write
    asked_because: str = ""  # for consent: the rule, limit, freeze or ceiling that asks a person first


def asked_because(run: Run, request: Request) -> str:
    """Why the guardrails put this plan to a person rather than act (consent requests only)."""
    record = run.guardrails or {}
    if request.kind is not RequestKind.CONSENT or record.get("effect") != "ask":
        return ""
    decided_by = str(record.get("decided_by", ""))
    if record.get("limit"):
        return f"{record['limit']} is met, so this run asks you instead of acting on its own"
    return f"{record.get('reason', '')} ({decided_by})" if decided_by else str(record.get("reason", ""))


def request_page(run: Run, request: Request, now: dt.datetime, catalog: Catalog, viewer_oid: str = "",
                 viewer_name: str = "") -> RequestPage:
    asked = {s.index for s in asked_steps(run, request)}
    return RequestPage(
        run_id=run.run_id, request_id=request.request_id, kind=request.kind.value,
        headline=headline(run, request, now), why=_why(run), origin=origin(run, now),
        resource=resource(run.resource_id),
        steps=[step_view(s, catalog, _previews_for(run, request), s.index in asked) for s in run.steps],
        choices=choices(run, request, catalog), approvers=approvers(request, viewer_oid, viewer_name),
        deadline=moment(request.deadline, now), state=request.state.value, outcome=outcome_words(request),
        what_next=what_next(run, request), run_outcome=run.outcome, reason=request.reason,
        comment=request.comment, quorum=quorum_text(request), comment_hint=comment_hint(request),
        comment_always=request.rule.comment is CommentRule.ALWAYS,
        changes=_short_changes(_previews_for(run, request)) if request.kind is RequestKind.CONSENT else [],
        asked_because=asked_because(run, request),
    )


@dataclass(frozen=True)
class AuditLine:
    seq: int
    at: Moment
    event: str
    actor_kind: str
    actor_id: str
    actor_name: str
    summary: str
    facts: list[tuple[str, str]] = field(default_factory=list)


# Details a reviewer reads first, in this order, with their labels.
AUDIT_FACTS = (
    ("request_id", "request"), ("step", "step"), ("channel", "channel"), ("plan_version", "plan version"),
    ("plan_hash", "plan hash"), ("correlation_id", "ARM correlation id"), ("status", "HTTP status"),
    ("identity", "identity"), ("token_expires_at", "delegated token expires"),
    ("token_lifetime_seconds", "delegated token lifetime (s)"), ("scope", "scope"), ("comment", "comment"),
)


def audit_line(event: AuditEvent, now: dt.datetime) -> AuditLine:
    details = dict(event.details)
    facts: list[tuple[str, str]] = []
    for key, label in AUDIT_FACTS:
        if key in details and details[key] not in (None, ""):
            value = details.pop(key)
            facts.append((label, str(value + 1 if key == "step" and isinstance(value, int) else value)))
    facts += [(k.replace("_", " "), _plain(v) if not isinstance(v, list) else ", ".join(map(str, v)))
              for k, v in sorted(details.items()) if v not in (None, "", [], {})]
    return AuditLine(seq=event.seq, at=moment(event.at, now), event=event.event.replace("_", " "),
                     actor_kind=event.actor.kind, actor_id=event.actor.id, actor_name=event.actor.name,
                     summary=event.summary, facts=facts)


@dataclass(frozen=True)
class RequestSummary:
    request_id: str
    kind: str
    state: str
    question: str
    outcome: str
    deadline: Moment
    decided: str
    approvers: list[ApproverView]
    highlight: bool
    what_next: str
    reason: str
    comment: str
    quorum: str


# ------------------------------------------------------------------------------------- guardrails


@dataclass(frozen=True)
class GuardrailStepView:
    number: int
    action: str
    effect: str  # allow / ask / deny
    decided_by: str
    reason: str


@dataclass(frozen=True)
class GuardrailsView:
    """What the guardrails decided when the run started, and why, as a run page and e-mail say it first."""

    effect: str  # allow / ask / deny: what was (or, in shadow mode, would have been) done
    headline: str  # "Denied by rule no-restart (global)"
    reason: str
    decided_by: str
    shadow: bool
    shadow_note: str  # for a shadow run: that nothing was done, and what would have been
    behind: tuple[tuple[str, str], ...]  # ("limit", "..."), ("freeze", "..."), ("ceiling", "..."), ("shadow", "...")
    steps: tuple[GuardrailStepView, ...]


EFFECT_WORDS = {"allow": "Allowed", "ask": "Consent asked", "deny": "Denied"}
WOULD_WORDS = {"allow": "would have been allowed", "ask": "would have asked consent", "deny": "would have been denied"}


def guardrails_view(run: Run) -> GuardrailsView | None:
    """The run's recorded verdict (`Verdict.as_record()`), or None for a run that has none (unmatched)."""
    record = run.guardrails
    if not record:
        return None
    effect = str(record.get("effect", ""))
    decided_by = str(record.get("decided_by", ""))
    shadow = bool(record.get("shadow"))
    words = WOULD_WORDS.get(effect, effect) if shadow else EFFECT_WORDS.get(effect, effect)
    headline = f"{words[:1].upper()}{words[1:]} by {decided_by}" if decided_by else words
    behind: list[tuple[str, str]] = []
    if record.get("limit"):
        behind.append(("limit", str(record["limit"])))
    if record.get("freeze"):
        behind.append(("freeze", str(record["freeze"])))
    if decided_by.startswith("the global autonomy ceiling"):
        behind.append(("ceiling", "the global autonomy ceiling caps this run below autonomous"))
    if shadow:
        behind.append(("shadow", str(record.get("shadow_by") or "shadow mode")))
    steps = tuple(GuardrailStepView(number=int(s.get("step", i)) + 1, action=str(s.get("action", "")),
                                    effect=str(s.get("effect", "")), decided_by=str(s.get("decided_by", "")),
                                    reason=str(s.get("reason", "")))
                  for i, s in enumerate(record.get("steps") or []) if isinstance(s, Mapping))
    note = ""
    if shadow:
        note = "No one was asked. " + (f"What it would have done: {run.outcome}" if run.outcome else "")
    return GuardrailsView(effect=effect, headline=headline, reason=str(record.get("reason", "")),
                          decided_by=decided_by, shadow=shadow, shadow_note=note.strip(), behind=tuple(behind),
                          steps=steps)


@dataclass(frozen=True)
class RunPage:
    run_id: str
    verb: str  # "Restart", as the headline says it before the resource
    title: str
    state: str
    outcome: str
    why: str
    origin: Origin
    resource: Resource
    steps: list[StepView]
    requests: list[RequestSummary]
    highlight: RequestSummary | None
    audit: list[AuditLine]
    created: Moment
    updated: Moment
    plan_hash: str
    unknown: tuple[str, str] | None = None  # a write whose outcome is unknown: said first, with its lookup
    paused: tuple[str, str] | None = None  # stopped by the kill switch: who threw it, when, why; what follows
    guardrails: GuardrailsView | None = None
    ended: Moment | None = None  # None while open


def run_title(run: Run) -> str:
    if not run.steps:
        return f"{_alert_line(run) or 'alert'} on {resource(run.resource_id).label}"
    writes = [s for s in run.steps if s.is_write] or list(run.steps)
    phrase = action_phrase(run, writes)
    return phrase.removesuffix(f" {resource(run.resource_id).name}") + f" {resource(run.resource_id).label}"


def _short_changes(previews: tuple[StepPreview, ...]) -> list[str]:
    """"power state VM running → VM restarting" (with "step 2: " before it when several writes change)."""
    if len(previews) == 1:
        return [describe_preview(previews[0])]
    return [f"step {p.step + 1}: {describe_preview(p)}" for p in previews]


def _previews_for(run: Run, request: Request) -> tuple[StepPreview, ...]:
    """The previews a request was asked with: its own (consent), or the run's latest consent's."""
    if request.previews:
        return request.previews
    consents = [r for r in run.requests if r.kind is RequestKind.CONSENT and r.previews]
    return consents[-1].previews if consents else ()


def run_page(run: Run, audit: list[AuditEvent], now: dt.datetime, catalog: Catalog, highlight: str = "",
             viewer_oid: str = "", viewer_name: str = "") -> RunPage:
    summaries = []
    for request in run.requests:
        decided = ""
        if request.decided_at is not None:
            by = f" by {request.decided_by.name}" if request.decided_by else ""
            decided = f"{by.strip()} at {moment(request.decided_at, now).text}".strip()
        summaries.append(RequestSummary(
            request_id=request.request_id, kind=request.kind.value, state=request.state.value,
            question=headline(run, request, now).question.rstrip("?:"),
            outcome=f"approval recorded, {quorum_text(request)}" if request.state is RequestState.PENDING
            and request.approvals() else outcome_words(request),
            deadline=moment(request.deadline, now), decided=decided,
            approvers=approvers(request, viewer_oid, viewer_name), highlight=request.request_id == highlight,
            what_next=what_next(run, request), reason=request.reason, comment=request.comment,
            quorum=quorum_text(request)))
    marked = next((s for s in summaries if s.highlight), None)
    consent = next((r for r in reversed(run.requests) if r.kind is RequestKind.CONSENT), None)
    where = resource(run.resource_id)
    return RunPage(
        run_id=run.run_id, verb=run_title(run).removesuffix(f" {where.label}"), title=run_title(run),
        state=run.state.value, outcome=run.outcome,
        why=_why(run), origin=origin(run, now), resource=resource(run.resource_id),
        steps=[step_view(s, catalog, consent.previews if consent else (),
                         s.state in (StepState.ATTEMPTING, StepState.EXECUTING)) for s in run.steps],
        requests=summaries, highlight=marked, audit=[audit_line(e, now) for e in audit],
        created=moment(run.created_at, now), updated=moment(run.updated_at, now),
        plan_hash=consent.plan_hash if consent else "", unknown=unknown_outcome_notice(run),
        paused=paused_notice(run, now),
        guardrails=guardrails_view(run),
        ended=moment(ended, now) if (ended := run.ended_time) else None,
    )


@dataclass(frozen=True)
class RunRow:
    run_id: str
    title: str
    state: str
    alert: str
    age: str
    outcome: str


def run_row(summary: RunSummary, now: dt.datetime) -> RunRow:
    where = resource(summary.resource_id)
    return RunRow(run_id=summary.run_id, title=f"{summary.plan_name or summary.alert_rule} on {where.label}",
                  state=summary.state.value, alert=f"{summary.severity} {summary.alert_rule}",
                  age=relative(summary.created_at - now), outcome=summary.outcome)


@dataclass(frozen=True)
class PendingRow:
    run_id: str
    request_id: str
    question: str
    alert: str
    age: str
    time_left: str


def pending_for(runs: Iterable[Run], viewer_oid: str, viewer_name: str, now: dt.datetime) -> list[PendingRow]:
    """The requests waiting for this person, oldest first."""
    rows: list[tuple[dt.datetime, PendingRow]] = []
    for run in runs:
        for request in run.requests:
            if request.state is not RequestState.PENDING:
                continue
            if not any(a.matches(viewer_oid, viewer_name) for a in request.approvers):
                continue
            opened = request.deadline - _asked_for(run, request)
            rows.append((opened, PendingRow(
                run_id=run.run_id, request_id=request.request_id, question=headline(run, request, now).question,
                alert=_alert_line(run), age=relative(opened - now),
                time_left=time_left(request.deadline, now))))
    return [row for _, row in sorted(rows, key=lambda pair: pair[0])]


def _asked_for(run: Run, request: Request) -> dt.timedelta:
    # The request does not carry its opening time; the run's update when it opened is close enough
    # for an age shown in minutes, and never after the deadline.
    return max(dt.timedelta(0), request.deadline - min(run.updated_at, request.deadline))


# ------------------------------------------------------------------------------------------- e-mails


def request_subject(run: Run, request: Request, now: dt.datetime) -> str:
    """"[Sev1] Restart vm-web-01? Consent needed by 21:00 UTC" — the whole question in the subject."""
    phrase = action_phrase(run, asked_steps(run, request))
    by = moment(request.deadline, now).utc
    if request.kind is RequestKind.CONSENT:
        return f"{_tag(run)}{phrase}? Consent needed by {by}"
    return f"{_tag(run)}{phrase} with your access? Credentials needed by {by}"


def reminder_subject(run: Run, request: Request, now: dt.datetime) -> str:
    return f"Reminder: {request_subject(run, request, now)} ({time_left(request.deadline, now)})"


def escalation_subject(run: Run, request: Request, now: dt.datetime) -> str:
    return f"Escalated: {request_subject(run, request, now)}"


def information_subject(run: Run, request: Request, now: dt.datetime) -> str:
    phrase = action_phrase(run, asked_steps(run, request))
    what = "consent" if request.kind is RequestKind.CONSENT else "credentials"
    return f"{_tag(run)}For your information: {phrase} waits for {what} (until " \
           f"{moment(request.deadline, now).utc})"


def ended_subject(run: Run) -> str:
    unknown = ", outcome unknown" if unknown_outcome(run) else ""
    return f"{_tag(run)}Run {run.state.value}{unknown}: {run_title(run)}"


def decided_subject(run: Run, request: Request) -> str:
    """"[Sev1] Restart vm-web-01: consent refused by bob@contoso.test — nothing more needed from you"."""
    phrase = action_phrase(run, asked_steps(run, request))
    by = f" by {request.decided_by.name}" if request.decided_by is not None else ""
    return f"{_tag(run)}{phrase}: {outcome_words(request)}{by} — nothing more needed from you"


@dataclass(frozen=True)
class RejectedRow:
    message_id: str
    reason: str
    received: str
    age: str
    body: str
    body_cut: bool


def rejected_row(item: Mapping[str, Any], now: dt.datetime) -> RejectedRow:
    received = str(item.get("received_at", ""))
    try:
        when = moment(dt.datetime.fromisoformat(received), now)
        shown, age = when.iso, when.relative
    except ValueError:
        shown, age = received, ""
    return RejectedRow(message_id=str(item.get("message_id", "")), reason=str(item.get("reason", "")),
                       received=shown, age=age, body=str(item.get("body", "")), body_cut=bool(item.get("body_cut")))


def paused_notice(run: Run, now: dt.datetime) -> tuple[str, str] | None:
    """A run the kill switch stopped: said first, with the switch's reason, who threw it and when."""
    stopped = run.pause
    if run.state is not RunState.PAUSED or stopped is None:
        return None
    thrown = moment(stopped.thrown_at, now)
    headline = (f"Paused by the kill switch: {stopped.reason}, thrown by {stopped.thrown_by.name} at "
                f"{thrown.text}.")
    where = f"before step {stopped.step + 1}" if stopped.step is not None else "before consent was asked"
    rest = (f"The run stopped {where} ({moment(stopped.paused_at, now).text}) and sends nothing to Azure Resource "
            "Manager until the switch is lifted; then it goes on, asking again for any consent or credentials "
            "that lapsed meanwhile.")
    return headline, rest


def unknown_outcome_notice(run: Run) -> tuple[str, str] | None:
    """What an operator must know first about a run whose write may or may not have happened: the
    headline and what to look up (the id ARM's activity log finds it by), as plain text."""
    step = unknown_outcome(run)
    if step is None:
        return None
    headline = (f"Outcome unknown: step {step.index + 1} ({step.action}) was sent to Azure Resource Manager and "
                "the host stopped before ARM answered. It was not repeated.")
    lookup = (f"Before acting again, look it up in the activity log of {run.resource_id}: correlation id "
              f"{step.client_request_id or '(none recorded)'}.")
    return headline, lookup
