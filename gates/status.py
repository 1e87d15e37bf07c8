"""Status over HTTP: a run as JSON or as a readable page with its audit timeline; runs by state."""

from __future__ import annotations

import json
import urllib.parse

import azure.functions as func

from gates.http_auth import principal_from
from gates.pages import run_json, run_page, summary_json
from shared.core.authority import can_read
from shared.core.model import RunState
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


def rejected_alerts(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    if (refused := refusal(req)) is not None:
        return refused
    return _json({"rejected": services.rejected_alerts.list_recent(50)})


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("get_run")
    @bp.route(route="runs/{run_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def run_status(req: func.HttpRequest) -> func.HttpResponse:
        return get_run(services(), req)

    @bp.function_name("list_runs")
    @bp.route(route="runs", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def runs(req: func.HttpRequest) -> func.HttpResponse:
        return list_runs(services(), req)

    @bp.function_name("rejected_alerts")
    @bp.route(route="rejected-alerts", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def rejected(req: func.HttpRequest) -> func.HttpResponse:
        return rejected_alerts(services(), req)

    @bp.function_name("health")
    @bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def health(req: func.HttpRequest) -> func.HttpResponse:
        return _json({"status": "ok"})

    return bp
