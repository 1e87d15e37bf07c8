"""Plans an agent proposes: read and checked field by field, judged against the agents policy, and
started as a run like any other.

The policy trusts people, not agents: consent goes to the requesting person only where the policy names
them as an approver (consent unlocks the *agent's* permissions); otherwise to the policy's approvers.
Credentials carry only the requester's own rights, so they may always be asked of the requester.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from shared.core.catalog import ActionSpec, Catalog, resource_type_of
from shared.core.change import Change, ChangeBuilder
from shared.core.guardrails import Effect, Facts, StepToDecide, decide
from shared.core.guardrails import Verdict as GuardrailVerdict
from shared.core.model import Actor, Approver, Mode, Proposal, Run, RunState, Step
from shared.core.plans import AgentPolicy, PlanBook
from shared.core.runs import open_run, opening_state, run_mode
from shared.core.transitions import RunEvent

MAX_STEPS = 20
MAX_RATIONALE = 4000
MAX_REFERENCE = 500
MAX_KEY = 200
RUNBOOK = "proposed-by-agent"
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_RESOURCE_ID = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/.+/.+$", re.IGNORECASE)


def catalog_action(catalog: Catalog, name: str) -> ActionSpec | None:
    """The one door to the action catalog for proposals: the actions a plan may name, by name."""
    return catalog.get(name)


def catalog_actions(catalog: Catalog) -> list[ActionSpec]:
    return sorted(catalog.values(), key=lambda spec: spec.name)


class InvalidPlan(ValueError):
    """A proposed plan that cannot be read; `field` names the part that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ProposedStep:
    action: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ProposedPlan:
    resource_id: str
    steps: tuple[ProposedStep, ...]
    rationale: str
    idempotency_key: str
    reference: str = ""
    requester: Approver | None = None

    @property
    def fingerprint(self) -> str:
        """What the plan is; the same idempotency key must always come with the same plan."""
        subject = {"resource": self.resource_id.lower(), "steps": [[s.action, s.parameters] for s in self.steps],
                   "rationale": self.rationale, "reference": self.reference,
                   "requester": [self.requester.object_id, self.requester.upn] if self.requester else None}
        return hashlib.sha256(json.dumps(subject, sort_keys=True).encode()).hexdigest()


def _text(document: dict[str, Any], field: str, limit: int, *, required: bool) -> str:
    value = document.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidPlan(field, "is required: a non-empty string" if required else "must be a string")
    if len(value) > limit:
        raise InvalidPlan(field, f"is longer than {limit} characters")
    return value.strip()


def parse_plan(document: Any, catalog: Catalog) -> ProposedPlan:
    """A proposed plan from its JSON document, or `InvalidPlan` naming the first field that is wrong; its
    steps and their parameters are checked against the catalog (parameters by the action's JSON Schema)."""
    if not isinstance(document, dict):
        raise InvalidPlan("(body)", "must be a JSON object")
    known = {"resource_id", "steps", "rationale", "idempotency_key", "reference", "requester"}
    extra = sorted(set(document) - known)
    if extra:
        raise InvalidPlan(extra[0], f"is not a field of a plan; the fields are {sorted(known)}")
    resource_id = _text(document, "resource_id", 1000, required=True)
    if not _RESOURCE_ID.match(resource_id):
        raise InvalidPlan("resource_id", "must be an Azure resource id (/subscriptions/…/resourceGroups/…/"
                                         "providers/…)")
    raw_steps = document.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise InvalidPlan("steps", "must be a non-empty list of {action, parameters}")
    if len(raw_steps) > MAX_STEPS:
        raise InvalidPlan("steps", f"has more than {MAX_STEPS} steps")
    steps: list[ProposedStep] = []
    resource_type = resource_type_of(resource_id).lower()
    for i, raw in enumerate(raw_steps):
        field = f"steps[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("action"), str):
            raise InvalidPlan(field, "must be an object with an 'action'")
        spec = catalog_action(catalog, raw["action"])
        if spec is None:
            raise InvalidPlan(f"{field}.action", f"{raw['action']!r} is not in the action catalog "
                                                 f"(list_actions names them)")
        parameters = raw.get("parameters", {})
        if not isinstance(parameters, dict):
            raise InvalidPlan(f"{field}.parameters", "must be an object")
        if problems := spec.problems(parameters):
            raise InvalidPlan(f"{field}.parameters", "; ".join(problems))
        if not spec.applies_to(resource_type):
            raise InvalidPlan(f"{field}.action", f"{spec.name} acts on {spec.resource_type}, "
                                                 f"not on {resource_type_of(resource_id) or 'this resource'}")
        steps.append(ProposedStep(spec.name, dict(parameters)))
    rationale = _text(document, "rationale", MAX_RATIONALE, required=True)
    key = _text(document, "idempotency_key", MAX_KEY, required=True)
    reference = _text(document, "reference", MAX_REFERENCE, required=False)
    return ProposedPlan(resource_id, tuple(steps), rationale, key, reference, _requester(document.get("requester")))


def _requester(raw: Any) -> Approver | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidPlan("requester", "must be {object_id, upn}: the person who prompted the agent")
    object_id, upn = raw.get("object_id"), raw.get("upn")
    if not isinstance(object_id, str) or not _GUID.match(object_id):
        raise InvalidPlan("requester.object_id", "must be the person's Entra object id (a GUID)")
    if not isinstance(upn, str) or "@" not in upn or len(upn) > 320:
        raise InvalidPlan("requester.upn", "must be the person's sign-in name")
    return Approver(upn.lower(), object_id.lower())


class Verdict(StrEnum):
    REFUSE = "refuse"
    RUN = "run"  # no consent needed (read-only, or autonomous): the agent's own identity acts
    CONSENT = "consent"  # a person consents before anything runs
    SHADOW = "shadow"  # shadow mode: what would happen is recorded, nothing acts, no one is asked


@dataclass(frozen=True)
class Assessment:
    """What the policy does with a plan, before anything is created."""

    verdict: Verdict
    reason: str
    field: str = ""
    policy: AgentPolicy | None = None
    mode: Mode = Mode.REVIEW
    consent_from: tuple[Approver, ...] = ()
    credentials_from: tuple[Approver, ...] = ()
    requester_trusted: bool = False
    guardrails: GuardrailVerdict | None = None  # the rules' verdict, step by step, and what decided it


def _trusted(requester: Approver, approvers: Iterable[Approver]) -> bool:
    return any(a.matches(requester.object_id or "", requester.upn) for a in approvers)


def assess(plan: ProposedPlan, agent_id: str, book: PlanBook, ceiling: Mode, now: dt.datetime | None = None,
           tags: Mapping[str, str] | None = None, app_shadow: bool = False) -> Assessment:
    # `plan` was read against `book.catalog` (parse_plan): every step names one of its actions.
    """The first agents-policy entry for this agent that covers the resource and every step admits the
    plan; then the guardrails (the app's rules and the entry's own) decide it, as for an alert's run."""
    entries = [a for a in book.agents if a.client_id == agent_id.lower()]
    if not entries:
        return Assessment(Verdict.REFUSE, f"agent {agent_id} is not named in the agents policy; it may propose "
                                          "nothing")
    in_scope = [a for a in entries if a.scope.contains(plan.resource_id)]
    if not in_scope:
        return Assessment(Verdict.REFUSE, "the resource is outside every scope the policy gives this agent",
                          field="resource_id")
    steps = {s.action for s in plan.steps}
    policy = next((a for a in in_scope if steps <= a.actions), None)
    if policy is None:
        allowed = set().union(*(a.actions for a in in_scope))
        outside = sorted(steps - allowed) or sorted(steps)
        index = next(i for i, s in enumerate(plan.steps) if s.action in outside)
        return Assessment(Verdict.REFUSE, f"the policy does not let this agent propose {outside} here",
                          field=f"steps[{index}].action")
    to_decide = [StepToDecide.of(book.catalog, s.action, s.parameters) for s in plan.steps
                 if catalog_action(book.catalog, s.action) is not None]
    facts = Facts(resource_id=plan.resource_id, agent=policy.name, tags=tags, from_alert=False)
    guard = decide(book.guardrails, policy.guardrails, f"agents policy {policy.name}", policy.mode, to_decide,
                   facts, ceiling, now or dt.datetime.now(dt.UTC), app_shadow=app_shadow)
    return judged(plan, policy, guard)


def judged(plan: ProposedPlan, policy: AgentPolicy, guard: GuardrailVerdict) -> Assessment:
    """The assessment of an admitted plan under the guardrails' verdict (again after a limit was met)."""
    requester = plan.requester
    trusted = requester is not None and _trusted(requester, policy.approvers)
    consent_from = (requester,) if requester is not None and trusted else policy.approvers
    credentials_from = (requester,) if requester is not None else policy.approvers
    mode = run_mode(policy.mode, guard)
    base = Assessment(Verdict.RUN, "", policy=policy, mode=mode, credentials_from=credentials_from,
                      requester_trusted=trusted, guardrails=guard)
    if guard.shadow:
        return replace(base, verdict=Verdict.SHADOW, consent_from=consent_from,
                       reason=f"shadow mode ({guard.shadow_by}): it would {_would(guard)}; nothing acts and no one "
                              "is asked")
    if guard.effect is Effect.DENY:
        denied = next(s for s in guard.steps if s.effect is Effect.DENY)
        return replace(base, verdict=Verdict.REFUSE, reason=f"denied by the guardrails: {guard.reason}",
                       field=f"steps[{denied.index}].action")
    if guard.effect is Effect.ASK:
        who = ", ".join(a.upn for a in consent_from)
        asked = (f"{who} is asked for consent (the requester is an approver for this scope)" if trusted
                 else f"the policy's approvers ({who}) are asked for consent"
                 + (" — the requester is not an approver for this scope" if requester is not None else ""))
        return replace(base, verdict=Verdict.CONSENT, consent_from=consent_from,
                       reason=f"{guard.reason} ({guard.decided_by}): {asked}")
    why = ("read-only plan: no consent is asked" if not guard.writes
           else f"consent is implicit: {guard.reason} ({guard.decided_by})")
    return replace(base, reason=why)


def _would(guard: GuardrailVerdict) -> str:
    return {Effect.DENY: "be denied", Effect.ASK: "ask consent",
            Effect.ALLOW: "act autonomously" if guard.writes else "run its reads"}[guard.effect] \
        + f" ({guard.decided_by})"


def run_id_for(agent_id: str, plan: ProposedPlan) -> str:
    """The run a proposal makes: the same agent, key and plan always name the same run."""
    return hashlib.sha256(f"{agent_id.lower()}|{plan.idempotency_key}|{plan.fingerprint}".encode()).hexdigest()[:32]


def idempotency_row(agent_id: str, key: str) -> str:
    """The key of the row that holds (agent, idempotency key) -> run: a table key, whatever the key holds."""
    return "agent-plan-" + hashlib.sha256(f"{agent_id.lower()}|{key}".encode()).hexdigest()[:48]


def start_proposed_run(run_id: str, plan: ProposedPlan, agent_id: str, assessment: Assessment, book: PlanBook,
                       now: dt.datetime, missing: Mapping[int, Sequence[str]] | None = None) -> Change:
    policy = assessment.policy
    guard = assessment.guardrails
    if policy is None or guard is None or assessment.verdict is Verdict.REFUSE:
        raise ValueError("a refused plan starts no run")
    plan_version = book.version
    steps = tuple(
        Step(index=i, action=s.action, kind=spec.kind, permission=spec.permission, parameters=dict(s.parameters),
             permissions=spec.permissions)
        for i, s in enumerate(plan.steps) if (spec := catalog_action(book.catalog, s.action)) is not None
    )
    needs_consent = assessment.verdict is Verdict.CONSENT
    proposal = Proposal(agent_id=agent_id.lower(), agent_name=policy.name, idempotency_key=plan.idempotency_key,
                        fingerprint=plan.fingerprint, rationale=plan.rationale, reference=plan.reference,
                        requester=plan.requester)
    run = Run(
        run_id=run_id, state=opening_state(guard),
        mode=assessment.mode, requested_mode=policy.mode, plan_name=policy.name, plan_version=plan_version,
        runbook=RUNBOOK, resource_id=plan.resource_id, alert=None, steps=steps,
        approvers=assessment.consent_from if needs_consent else policy.approvers, notify=policy.notify,
        created_at=now, updated_at=now, proposal=proposal,
        credential_approvers=assessment.credentials_from, guardrails=guard.as_record(),
    )
    b = ChangeBuilder(run, now)
    agent = Actor("agent", agent_id.lower(), f"agent {policy.name}")
    b.log("plan_proposed", agent, f"agent {policy.name} proposed {len(steps)} step(s) on {plan.resource_id}",
          agent_id=agent_id.lower(), rationale=plan.rationale, reference=plan.reference,
          requester=plan.requester.upn if plan.requester else None, idempotency_key=plan.idempotency_key,
          steps=[s.action for s in steps])
    plan_actor = Actor("plan", f"agents:{policy.name}@v{plan_version}",
                       f"agents policy {policy.name} (v{plan_version})")
    b.log("run_started", plan_actor,
          f"agents policy {policy.name} admitted the plan; mode {assessment.mode.value}", plan=policy.name,
          version=plan_version, mode=assessment.mode.value, requested_mode=policy.mode.value,
          requester_trusted=assessment.requester_trusted,
          consent_from=[a.upn for a in assessment.consent_from],
          credentials_from=[a.upn for a in assessment.credentials_from])
    open_run(b, guard, plan_actor, missing, approvers=assessment.consent_from)
    return b.build()


def cancel_by_agent(run: Run, agent_id: str, reason: str, now: dt.datetime) -> Change | None:
    """The proposing agent withdraws its plan while a person is still being asked (or while the kill switch
    holds it, nothing in flight); a run already acting or ended is left as it is (None)."""
    if run.proposal is None or run.proposal.agent_id != agent_id.lower():
        return None
    if run.state not in (RunState.AWAITING_CONSENT, RunState.AWAITING_CREDENTIALS, RunState.PAUSED):
        return None
    b = ChangeBuilder(run, now)
    b.end(RunEvent.AGENT_CANCELLED, Actor("agent", agent_id.lower(), f"agent {run.proposal.agent_name}"),
          f"withdrawn by the agent: {reason[:500]}" if reason else "withdrawn by the agent; no action taken")
    return b.build()
