"""Status over HTTP: a run as JSON or as a readable page with its audit timeline; runs by state; what
became of an accepted alert; the alerts refused, a page at a time."""

from __future__ import annotations

import json
import urllib.parse

import azure.functions as func

from gates.http_auth import is_api_call, principal_from
from gates.pages import rejected_alerts_page, run_json, run_page, summary_json
from gates.proposals import agent_from_request, get_agent_run
from shared.core.authority import can_read
from shared.core.model import RunState
from shared.ports import InvalidContinuation
from shared.services import Services, ServicesProvider


def _json(document: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(document), status_code=status, mimetype="application/json")


def refusal(req: func.HttpRequest, what: str = "runs") -> func.HttpResponse | None:
    """A 401 or 403 for anyone without a Gates role; None for a signed-in reader or approver."""
    principal = principal_from(req)
    if principal is None:
        return _json({"status": 401, "message": f"sign in to read {what}"}, 401)
    if not can_read(principal):
        return _json({"status": 403, "message": "needs the Gates.Reader or Gates.Approver role"}, 403)
    return None


def get_run(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    principal = principal_from(req)
    if not (principal and can_read(principal)) and is_api_call(req):
        # Not a person who may read runs, but a bearer token: an agent reading back a run it proposed.
        agent = agent_from_request(services, req)
        if isinstance(agent, func.HttpResponse):
            return agent
        answer = get_agent_run(services, agent, req.route_params.get("run_id", ""))
        return _json(answer.body, answer.status)
    if (refused := refusal(req)) is not None:
        return refused
    run = services.runs.get_run(req.route_params.get("run_id", ""))
    if run is None:
        return _json({"status": 404, "message": "no such run"}, 404)
    audit = services.runs.list_audit(run.run_id)
    if req.params.get("format") == "json" or "application/json" in req.headers.get("Accept", "") \
            or "text/html" not in req.headers.get("Accept", ""):
        return _json(run_json(run, audit))
    return func.HttpResponse(run_page(run, audit, services.policy.plans.catalog), mimetype="text/html")


def list_runs(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    if (refused := refusal(req)) is not None:
        return refused
    state_text = req.params.get("state")
    try:
        state = RunState(state_text) if state_text else None
    except ValueError:
        return _json({"status": 400, "message": f"state must be one of {[s.value for s in RunState]}"}, 400)
    try:
        limit = max(1, min(500, int(req.params.get("limit", "100"))))
    except ValueError:
        return _json({"status": 400, "message": "limit must be a number"}, 400)
    try:
        page = services.runs.list_runs(state, limit, req.params.get("continuation") or None)
    except ValueError as error:
        return _json({"status": 400, "message": str(error)}, 400)
    document: dict[str, object] = {"runs": [summary_json(r) for r in page.runs]}
    if page.continuation:
        query = {"continuation": page.continuation, "limit": str(limit), **({"state": state.value} if state else {})}
        document["continuation"] = page.continuation
        document["next"] = f"/api/runs?{urllib.parse.urlencode(query)}"
    return _json(document)


def _wants_html(req: func.HttpRequest) -> bool:
    accept = req.headers.get("Accept", "")
    return req.params.get("format") != "json" and "text/html" in accept and "application/json" not in accept


def rejected_alerts(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    """Refused alerts newest first, a page at a time: `limit` (1..200) and the `continuation` of the last page."""
    if (refused := refusal(req)) is not None:
        return refused
    try:
        limit = max(1, min(200, int(req.params.get("limit", "50"))))
    except ValueError:
        return _json({"status": 400, "message": "limit must be a number"}, 400)
    try:
        items, token = services.rejected_alerts.list_page(limit, req.params.get("continuation") or None)
    except InvalidContinuation as error:
        return _json({"status": 400, "message": str(error)}, 400)
    next_url = (f"{services.policy.public_base_url}/api/rejected-alerts?"
                f"{urllib.parse.urlencode({'limit': limit, 'continuation': token})}") if token else None
    if _wants_html(req):
        return func.HttpResponse(rejected_alerts_page(items, next_url), mimetype="text/html")
    return _json({"rejected": items, "continuation": token, "next": next_url})


def alert_status(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    """What became of an accepted alert (the intake's status URL): one point read by its key."""
    if (refused := refusal(req)) is not None:
        return refused
    status = services.alert_status.get(req.route_params.get("key", ""))
    if status is None:
        return _json({"status": 404, "message": "no alert was accepted with this key"}, 404)
    base = services.policy.public_base_url
    return _json({"key": status.key, "state": status.state.value, "alert_id": status.alert_id,
                  "condition": status.condition, "received_at": status.received_at.isoformat(),
                  "outcome": status.outcome,
                  "runs": [{"run_id": run_id, "url": f"{base}/api/runs/{run_id}"} for run_id in status.runs]})


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
        return _json({"status": "ok"})

    return bp
