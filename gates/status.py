"""Status over HTTP: a run as JSON or as a page with its audit trail; the rota's list of runs and of
the requests waiting for the signed-in person; what became of an accepted alert; the alerts refused, a
page at a time. Reading changes nothing."""

from __future__ import annotations

import urllib.parse
from typing import Any

import azure.functions as func

from gates import views
from gates.alert_lookup import current_status
from gates.approvals import request_path, run_path
from gates.http_auth import is_api_call, principal_from, sign_in_url, switch_account_url
from gates.proposals import agent_from_request, get_agent_run
from gates.rendering import html_response, json_response, wants_html
from shared.core.authority import can_read
from shared.core.model import AuditEvent, Run, RunState
from shared.core.previews import lines as preview_lines
from shared.core.steps import unknown_outcome
from shared.ports import InvalidContinuation, RunPage, RunSummary
from shared.services import Services, ServicesProvider

PAGE_SIZE = 25
PENDING_SCAN = 200  # open runs read to find what waits for one person


def refusal(req: func.HttpRequest, what: str = "runs") -> func.HttpResponse | None:
    """A 401 or 403 for anyone without a Gates role; None for a signed-in reader or approver."""
    principal = principal_from(req)
    path = urllib.parse.urlsplit(req.url).path or "/"
    if principal is None:
        if wants_html(req):
            return html_response("message.html", 401, title="Sign in", message=f"Sign in to read {what}.", viewer="",
                                 switch_url="", back_url=sign_in_url(path), back_label="Sign in")
        return json_response({"status": 401, "message": f"sign in to read {what}"}, 401)
    if not can_read(principal):
        if wants_html(req):
            return html_response("message.html", 403, title=f"You cannot read {what}",
                                 message=f"You are signed in as {principal.name}, who holds neither the "
                                         "Gates.Reader nor the Gates.Approver role.",
                                 viewer=principal.name, switch_url=switch_account_url(path), back_url="",
                                 back_label="")
        return json_response({"status": 403, "message": "needs the Gates.Reader or Gates.Approver role"}, 403)
    return None


def _wants_page(req: func.HttpRequest) -> bool:
    return req.params.get("format") != "json" and "application/json" not in req.headers.get("Accept", "") \
        and wants_html(req)


def get_run(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    principal = principal_from(req)
    if not (principal and can_read(principal)) and is_api_call(req):
        # Not a person who may read runs, but a bearer token: an agent reading back a run it proposed.
        agent = agent_from_request(services, req)
        if isinstance(agent, func.HttpResponse):
            return agent
        answer = get_agent_run(services, agent, req.route_params.get("run_id", ""))
        return json_response(answer.body, answer.status)
    if (refused := refusal(req)) is not None:
        return refused
    run = services.runs.get_run(req.route_params.get("run_id", ""))
    if run is None:
        return json_response({"status": 404, "message": "no such run"}, 404)
    audit = services.runs.list_audit(run.run_id)
    if not _wants_page(req):
        return json_response(run_json(run, audit))
    principal = principal_from(req)
    assert principal is not None  # _refusal answered the anonymous
    page = views.run_page(run, audit, services.clock.now(), services.policy.plans.catalog,
                          highlight=req.params.get("decided", ""),
                          viewer_oid=principal.object_id, viewer_name=principal.name)
    return html_response("run.html", page=page, viewer=principal.name, runs_url="/api/runs",
                         json_url=f"{run_path(run.run_id)}?format=json",
                         request_url=lambda request_id: request_path(run.run_id, request_id))


def _page_of_runs(services: Services, state: RunState | None, limit: int,
                  continuation: str | None) -> RunPage:
    """One page of runs, newest first: the one call site of the store's listing, for pages and JSON."""
    return services.runs.list_runs(state, limit, continuation)


WAITING = (RunState.AWAITING_CONSENT, RunState.AWAITING_CREDENTIALS)


def _waiting_runs(services: Services) -> list[Run]:
    """The open runs that may wait for a person, newest first: each open run read once, whole, for its
    requests (the open index says which runs are open, not in which state; open runs are few)."""
    newest = sorted(services.runs.open_runs(), key=lambda o: o.indexed_at, reverse=True)[:PENDING_SCAN]
    runs = (services.runs.get_run(o.run_id) for o in newest)
    return [run for run in runs if run is not None and run.state in WAITING]


def list_runs(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    if (refused := refusal(req)) is not None:
        return refused
    state_text = req.params.get("state")
    try:
        state = RunState(state_text) if state_text else None
    except ValueError:
        return json_response({"status": 400, "message": f"state must be one of {[s.value for s in RunState]}"}, 400)
    as_page = _wants_page(req)
    try:
        limit = max(1, min(500, int(req.params.get("limit", str(PAGE_SIZE if as_page else 100)))))
    except ValueError:
        return json_response({"status": 400, "message": "limit must be a number"}, 400)
    continuation = req.params.get("continuation") or None
    try:
        page = _page_of_runs(services, state, limit, continuation)
    except ValueError as error:
        return json_response({"status": 400, "message": str(error)}, 400)
    next_url = ""
    if page.continuation:
        query = {"continuation": page.continuation, "limit": str(limit), **({"state": state.value} if state else {})}
        next_url = f"/api/runs?{urllib.parse.urlencode(query)}"
    if not as_page:
        document: dict[str, object] = {"runs": [summary_json(r) for r in page.runs]}
        if page.continuation:
            document["continuation"] = page.continuation
            document["next"] = next_url
        return json_response(document)
    principal = principal_from(req)
    assert principal is not None
    now = services.clock.now()

    def list_url(for_state: str) -> str:
        return "/api/runs" + (f"?{urllib.parse.urlencode({'state': for_state})}" if for_state else "")

    current = state.value if state else ""
    return html_response(
        "runs.html", viewer=principal.name, state=current, states=[s.value for s in RunState],
        rows=[views.run_row(r, now) for r in page.runs],
        pending=views.pending_for(_waiting_runs(services), principal.object_id, principal.name, now),
        list_url=list_url, run_url=run_path, request_url=request_path, rejected_url="/api/rejected-alerts",
        previous_url=list_url(current) if continuation else "", next_url=next_url)


def rejected_alerts(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    """Refused alerts newest first, a page at a time: `limit` (1..200) and the `continuation` of the last page."""
    if (refused := refusal(req)) is not None:
        return refused
    try:
        limit = max(1, min(200, int(req.params.get("limit", "50"))))
    except ValueError:
        return json_response({"status": 400, "message": "limit must be a number"}, 400)
    try:
        items, token = services.rejected_alerts.list_page(limit, req.params.get("continuation") or None)
    except InvalidContinuation as error:
        return json_response({"status": 400, "message": str(error)}, 400)
    next_url = (f"{services.policy.public_base_url}/api/rejected-alerts?"
                f"{urllib.parse.urlencode({'limit': limit, 'continuation': token})}") if token else None
    if not _wants_page(req):
        return json_response({"rejected": items, "continuation": token, "next": next_url})
    principal = principal_from(req)
    assert principal is not None
    return html_response("rejected.html", viewer=principal.name, runs_url="/api/runs", next_url=next_url or "",
                         rows=[views.rejected_row(r, services.clock.now()) for r in items])


def alert_status(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    """What became of an accepted alert (the intake's status URL): a point read by its key, and while it
    says queued, the runs it names (gates/alert_lookup.py)."""
    if (refused := refusal(req)) is not None:
        return refused
    status = current_status(services, req.route_params.get("key", ""))
    if status is None:
        return json_response({"status": 404, "message": "no alert was accepted with this key"}, 404)
    base = services.policy.public_base_url
    return json_response({"key": status.key, "state": status.state.value, "alert_id": status.alert_id,
                          "condition": status.condition, "received_at": status.received_at.isoformat(),
                          "outcome": status.outcome,
                          "runs": [{"run_id": run_id, "url": f"{base}/api/runs/{run_id}"} for run_id in status.runs]})


def run_json(run: Run, audit: list[AuditEvent] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "run_id": run.run_id, "state": run.state.value, "outcome": run.outcome, "mode": run.mode.value,
        "requested_mode": run.requested_mode.value, "plan": run.plan_name, "plan_version": run.plan_version,
        "runbook": run.runbook, "resource_id": run.resource_id,
        "alert_rule": run.alert.rule_name if run.alert else None,
        "severity": run.alert.severity if run.alert else None, "created_at": run.created_at.isoformat(),
        "updated_at": run.updated_at.isoformat(),
        "ended_at": ended.isoformat() if (ended := run.ended_time) else None,
        "steps": [{"index": s.index, "action": s.action, "kind": s.kind.value, "permission": s.permission,
                   "state": s.state.value, "identity": s.credential_source.value if s.credential_source else None,
                   "outcome": s.outcome, "correlation_id": s.client_request_id,
                   "operation": (s.operation.async_operation or s.operation.location) if s.operation else None}
                  for s in run.steps],
        "outcome_unknown": unknown_outcome(run) is not None,
        "guardrails": run.guardrails,
        "requests": [{"request_id": r.request_id, "kind": r.kind.value, "state": r.state.value,
                      "deadline": r.deadline.isoformat(), "step": r.step_index,
                      "decided_by": r.decided_by.name if r.decided_by else None,
                      "decided_at": r.decided_at.isoformat() if r.decided_at else None,
                      "changes": preview_lines(r.previews),
                      "comment": r.comment, "quorum": r.rule.quorum, "comment_rule": r.rule.comment.value,
                      "votes": [{"by": v.actor.name, "object_id": v.actor.id, "decision": v.decision.value,
                                 "at": v.at.isoformat(), "comment": v.comment, "channel": v.channel}
                                for v in r.votes]} for r in run.requests],
    }
    if run.pause is not None:
        stopped = run.pause
        document["paused"] = {"reason": stopped.reason, "thrown_by": stopped.thrown_by.name,
                              "thrown_at": stopped.thrown_at.isoformat(), "paused_at": stopped.paused_at.isoformat(),
                              "step": stopped.step, "resumes_to": stopped.resume_to.value,
                              "by": "the kill switch"}
    if run.proposal is not None:
        p = run.proposal
        document["proposal"] = {"agent_id": p.agent_id, "agent": p.agent_name, "rationale": p.rationale,
                                "reference": p.reference, "idempotency_key": p.idempotency_key,
                                "requester": p.requester.upn if p.requester else None}
    if audit is not None:
        document["timeline"] = [{"seq": e.seq, "at": e.at.isoformat(), "event": e.event,
                                 "actor": {"kind": e.actor.kind, "id": e.actor.id, "name": e.actor.name},
                                 "summary": e.summary, "details": e.details} for e in audit]
    return document


def summary_json(summary: RunSummary) -> dict[str, Any]:
    return {"run_id": summary.run_id, "state": summary.state.value, "plan": summary.plan_name,
            "resource_id": summary.resource_id, "alert_rule": summary.alert_rule, "severity": summary.severity,
            "created_at": summary.created_at.isoformat(), "updated_at": summary.updated_at.isoformat(),
            "ended_at": summary.ended_at.isoformat() if summary.ended_at else None,
            "outcome": summary.outcome, "url": f"/api/runs/{summary.run_id}"}


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()
    # HEAD wherever GET: the host answers it with GET's status and headers and no body; nothing changes.

    @bp.function_name("get_run")
    @bp.route(route="runs/{run_id}", methods=["GET", "HEAD"], auth_level=func.AuthLevel.ANONYMOUS)
    def run_status(req: func.HttpRequest) -> func.HttpResponse:
        return get_run(services(), req)

    @bp.function_name("list_runs")
    @bp.route(route="runs", methods=["GET", "HEAD"], auth_level=func.AuthLevel.ANONYMOUS)
    def runs(req: func.HttpRequest) -> func.HttpResponse:
        return list_runs(services(), req)

    @bp.function_name("rejected_alerts")
    @bp.route(route="rejected-alerts", methods=["GET", "HEAD"], auth_level=func.AuthLevel.ANONYMOUS)
    def rejected(req: func.HttpRequest) -> func.HttpResponse:
        return rejected_alerts(services(), req)

    @bp.function_name("alert_status")
    @bp.route(route="alerts/{key}", methods=["GET", "HEAD"], auth_level=func.AuthLevel.ANONYMOUS)
    def alert(req: func.HttpRequest) -> func.HttpResponse:
        return alert_status(services(), req)

    @bp.function_name("health")
    @bp.route(route="health", methods=["GET", "HEAD"], auth_level=func.AuthLevel.ANONYMOUS)
    def health(req: func.HttpRequest) -> func.HttpResponse:
        return json_response({"status": "ok"})

    return bp
