"""Plans from agents over HTTP: `POST /api/plans` proposes one; the agent reads its runs back through
`GET /api/runs/{id}` (gates/status.py) with the same token. The MCP tools (gates/mcp_tools.py) call the
same functions, so both doors decide alike.

A proposal is read (400 naming the field), judged by the agents policy (403 with the reason: nothing is
created), then made a run once per (agent, idempotency key): the key's row is a conditional insert in the
correlations table, so two proposals at the same instant make one run, a repeat returns that run, and
the same key with another plan is a 409."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

from gates.agent_auth import AgentCaller, AgentRefused, authenticate_agent
from gates.guardrails import agent_missing_permissions, resource_tags, within_limits
from gates.killswitch import current
from gates.notify import request_link, run_link
from gates.preconditions import read_previews
from gates.shell import create, transact
from shared.core.errors import ConcurrencyConflict
from shared.core.model import AuditEvent, RequestKind, RequestState, Run, RunState
from shared.core.proposals import (
    Assessment,
    InvalidPlan,
    ProposedPlan,
    Verdict,
    assess,
    cancel_by_agent,
    catalog_actions,
    idempotency_row,
    judged,
    parse_plan,
    run_id_for,
    start_proposed_run,
)
from shared.core.requests import open_consent_request
from shared.services import Services, ServicesProvider

logger = logging.getLogger("sre_gates")
STAGE = "proposal"
MAX_RESULT_CHARS = 4000  # a read step's result, as the agent sees it
_SECRET_NAMES = re.compile(r"pass(word)?|secret|token|credential|connection.?string|(^|_)key$|keys$", re.IGNORECASE)
_DECISIONS = ("consent_granted", "consent_denied", "consent_expired", "credential_granted", "credential_denied",
              "credential_expired", "run_ended")


@dataclass(frozen=True)
class Answer:
    """What a plan operation answers, whichever door it came through."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


def _refused(status: int, message: str, **extra: Any) -> Answer:
    return Answer(status, {"status": status, "message": message, **extra})


def list_actions(services: Services) -> Answer:
    return Answer(200, {"actions": [
        {"name": s.name, "kind": s.kind.value, "resource_type": s.resource_type, "permissions": list(s.permissions),
         "description": s.description, "risk": s.risk, "impact": s.impact, "parameters": s.parameters}
        for s in catalog_actions(services.policy.plans.catalog)]})


def check_plan(services: Services, agent: AgentCaller, document: Any) -> Answer:
    """What policy would do with this plan, creating nothing."""
    try:
        plan = parse_plan(document, services.policy.plans.catalog)
    except InvalidPlan as error:
        return _refused(400, error.message, field=error.field, decision="refuse")
    verdict = _assess(services, agent, plan)
    guardrails = verdict.guardrails.as_record() if verdict.guardrails else None
    if verdict.verdict is Verdict.REFUSE:
        return Answer(200, {"decision": "refuse", "reason": verdict.reason, "field": verdict.field,
                            "guardrails": guardrails})
    return Answer(200, {
        "decision": {Verdict.RUN: "allow", Verdict.CONSENT: "consent"}.get(verdict.verdict, verdict.verdict.value),
        "guardrails": guardrails,
        "limits": "blast-radius limits are counted when a plan is proposed, not checked here",
        "reason": verdict.reason, "mode": verdict.mode.value, "policy": verdict.policy.name if verdict.policy else "",
        "consent_from": [a.upn for a in verdict.consent_from],
        "credentials": {"asked_of": [a.upn for a in verdict.credentials_from],
                        "when": "only if the agent's own identity meets a security challenge (403 or a claims "
                                "challenge) on a step"},
        "requester_trusted": verdict.requester_trusted})


def propose_plan(services: Services, agent: AgentCaller, document: Any) -> Answer:
    try:
        plan = parse_plan(document, services.policy.plans.catalog)
    except InvalidPlan as error:
        return _refused(400, error.message, field=error.field)
    verdict = _assess(services, agent, plan)
    if verdict.verdict is Verdict.REFUSE:
        return _refused(403, verdict.reason, field=verdict.field, decision="refuse",
                        guardrails=verdict.guardrails.as_record() if verdict.guardrails else None)
    run_id = run_id_for(agent.client_id, plan)
    row = idempotency_row(agent.client_id, plan.idempotency_key)
    now = services.clock.now()
    for _ in range(4):
        existing = services.correlations.get(row)
        if existing is None:
            if not services.correlations.create(row, run_id, now):
                continue  # another proposal with this key got there first: read what it holds
            created = True
        elif existing.run_id != run_id:
            return _refused(409, "this idempotency key was used with a different plan", field="idempotency_key",
                            run_id=existing.run_id, status_url=run_link(services, existing.run_id))
        else:
            created = False
        # The row names the run before the run is written; whoever finds it unwritten writes it (the same
        # plan makes the same change, and the store writes a run once). A row this call just inserted has no
        # run yet: no need to look.
        known = None if created else services.runs.get_run(run_id)
        if known is None:
            verdict, missing = _limited(services, plan, verdict, run_id, now)
            change = start_proposed_run(run_id, plan, agent.client_id, verdict, services.policy.plans, now, missing)
            create(services, change, STAGE)
        run = _with_consent_open(services, run_id, now, known)
        logger.info("agent %s proposal %s: run %s%s", agent.client_id, plan.idempotency_key, run_id,
                    "" if created else " (repeat)")
        view = agent_view(services, run, []) if run else {}
        return Answer(202 if created else 200, {
            "run_id": run_id, "status_url": run_link(services, run_id), "state": view.get("state", ""),
            "decision": verdict.verdict.value, "reason": verdict.reason, "repeat": not created,
            "waiting_for": view.get("waiting_for")})
    raise ConcurrencyConflict(f"idempotency row {row} kept changing")


def _assess(services: Services, agent: AgentCaller, plan: ProposedPlan) -> Assessment:
    book = services.policy.plans
    rules = (*book.guardrails.rules, *(r for a in book.agents for r in a.guardrails.rules))
    tags = resource_tags(services, book.catalog, plan.resource_id) if any(r.needs_tags for r in rules) else None
    return assess(plan, agent.client_id, book, services.policy.ceiling, services.clock.now(), tags,
                  app_shadow=services.policy.shadow)


def _limited(services: Services, plan: ProposedPlan, verdict: Assessment, run_id: str,
             now: dt.datetime) -> tuple[Assessment, dict[int, list[str]] | None]:
    """The assessment once the blast-radius limits are counted, and, for a shadow run, what the agent's
    own permissions lack step by step."""
    guard, policy = verdict.guardrails, verdict.policy
    if guard is None or policy is None:
        return verdict, None
    limited = within_limits(services, guard, run_id, plan.resource_id, None, now)
    if limited is not guard:
        verdict = judged(plan, policy, limited)
    if not limited.shadow:
        return verdict, None
    book = services.policy.plans
    permissions = [book.catalog[s.action].permissions for s in plan.steps]
    return verdict, agent_missing_permissions(services, plan.resource_id, permissions)


def _with_consent_open(services: Services, run_id: str, now: dt.datetime, known: Run | None) -> Run | None:
    """Open the consent request here, as the consent gate would (each write's before → after read now and
    bound into the request), so the agent's answer carries the link for the person asked. The consent
    gate's message then finds it open and does nothing."""
    run = known or services.runs.get_run(run_id)
    if run is None:
        return None
    asking = run.state is RunState.AWAITING_CONSENT and not any(
        r.kind is RequestKind.CONSENT and r.state is RequestState.PENDING for r in run.requests)
    if asking and current(services).engaged:
        return run  # previews are ARM reads: the consent gate's message pauses the run until the switch is lifted
    previews = read_previews(services, run) if asking else ()
    return transact(services, run_id, lambda latest: open_consent_request(latest, services.ids(), now,
                                                                          services.policy.timeouts, previews),
                    STAGE, sends_may_wait=True, run=run)


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "(redacted)" if _SECRET_NAMES.search(str(k)) else _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def bounded_result(result: dict[str, Any]) -> Any:
    """A step's result as the agent sees it. The engine keeps only a summary (name, id, status, instance
    statuses); this bounds and redacts again, so nothing a later summary adds can leak a secret or flood."""
    text = json.dumps(_redacted(result))
    if len(text) <= MAX_RESULT_CHARS:
        return json.loads(text)
    return {"truncated": True, "first_characters": text[:MAX_RESULT_CHARS]}


def agent_view(services: Services, run: Run, audit: list[AuditEvent]) -> dict[str, Any]:
    """A run as the agent that proposed it reads it: state, each step's outcome, every decision and why,
    and where a person is being asked, the link that person decides at."""
    requests = []
    for r in run.requests:
        entry: dict[str, Any] = {
            "request_id": r.request_id, "kind": r.kind.value, "state": r.state.value, "step": r.step_index,
            "asked_of": [a.upn for a in r.approvers], "deadline": r.deadline.isoformat(),
            "decided_by": r.decided_by.name if r.decided_by else None,
            "decided_at": r.decided_at.isoformat() if r.decided_at else None, "reason": r.reason}
        if r.state is RequestState.PENDING:
            entry["approval_url"] = request_link(services, run.run_id, r.request_id)
        requests.append(entry)
    return {
        "run_id": run.run_id, "state": run.state.value, "outcome": run.outcome, "mode": run.mode.value,
        "resource_id": run.resource_id, "status_url": run_link(services, run.run_id),
        "policy": run.plan_name, "created_at": run.created_at.isoformat(), "updated_at": run.updated_at.isoformat(),
        "ended_at": ended.isoformat() if (ended := run.ended_time) else None,
        "steps": [{"index": s.index, "action": s.action, "kind": s.kind.value, "parameters": s.parameters,
                   "state": s.state.value, "identity": s.credential_source.value if s.credential_source else None,
                   "outcome": s.outcome, "result": bounded_result(s.result) if s.result else None} for s in run.steps],
        "requests": requests,
        "decisions": [{"event": e.event, "at": e.at.isoformat(), "by": e.actor.name, "summary": e.summary,
                       **({"reason": e.details["reason"]} if e.details.get("reason") else {})}
                      for e in audit if e.event in _DECISIONS],
        "waiting_for": next(({"kind": r["kind"], "asked_of": r["asked_of"], "approval_url": r["approval_url"]}
                             for r in requests if "approval_url" in r), None),
    }


def _own_run(services: Services, agent: AgentCaller, run_id: str) -> Run | None:
    run = services.runs.get_run(run_id)
    # Another agent's run, or an alert's, is "not found": an agent learns nothing of runs not its own.
    if run is None or run.proposal is None or run.proposal.agent_id != agent.client_id:
        return None
    return run


def get_agent_run(services: Services, agent: AgentCaller, run_id: str) -> Answer:
    run = _own_run(services, agent, run_id)
    if run is None:
        return _refused(404, "no such run of yours")
    return Answer(200, agent_view(services, run, services.runs.list_audit(run_id)))


def cancel_agent_run(services: Services, agent: AgentCaller, run_id: str, reason: str) -> Answer:
    own = _own_run(services, agent, run_id)
    if own is None:
        return _refused(404, "no such run of yours")
    now = services.clock.now()
    run = transact(services, run_id, lambda r: cancel_by_agent(r, agent.client_id, reason, now), STAGE,
                   sends_may_wait=True, run=own)
    if run is None:
        return _refused(404, "no such run of yours")
    if run.state.value != "cancelled":
        return _refused(409, f"the run is {run.state.value}; only a run waiting for a person can be withdrawn",
                        state=run.state.value)
    return Answer(200, agent_view(services, run, services.runs.list_audit(run_id)))


def _json(answer: Answer) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(answer.body), status_code=answer.status, mimetype="application/json")


def agent_from_request(services: Services, req: func.HttpRequest) -> AgentCaller | func.HttpResponse:
    try:
        return authenticate_agent(services, req.headers.get("Authorization", ""))
    except AgentRefused as refusal:
        return _json(_refused(403 if refusal.forbidden else 401, refusal.reason))


def _body(req: func.HttpRequest) -> Any:
    try:
        return json.loads(req.get_body() or b"null")
    except ValueError:
        return None


def handle_propose(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    agent = agent_from_request(services, req)
    if isinstance(agent, func.HttpResponse):
        return agent
    document = _body(req)
    if document is None:
        return _json(_refused(400, "the body must be a JSON object (a plan)", field="(body)"))
    if req.url.rstrip("/").endswith("/plans/check"):
        return _json(check_plan(services, agent, document))
    return _json(propose_plan(services, agent, document))


def handle_cancel(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    agent = agent_from_request(services, req)
    if isinstance(agent, func.HttpResponse):
        return agent
    document = _body(req)
    reason = str(document.get("reason", "")) if isinstance(document, dict) else ""
    return _json(cancel_agent_run(services, agent, req.route_params.get("run_id", ""), reason))


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    # Anonymous to the Functions host: the agent's own Entra token is the key, checked in the function.
    @bp.function_name("propose_plan")
    @bp.route(route="plans", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    def propose(req: func.HttpRequest) -> func.HttpResponse:
        return handle_propose(services(), req)

    @bp.function_name("check_plan")
    @bp.route(route="plans/check", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    def check(req: func.HttpRequest) -> func.HttpResponse:
        return handle_propose(services(), req)

    @bp.function_name("cancel_run")
    @bp.route(route="runs/{run_id}/cancel", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    def cancel(req: func.HttpRequest) -> func.HttpResponse:
        return handle_cancel(services(), req)

    return bp
