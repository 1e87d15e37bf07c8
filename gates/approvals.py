"""Approvals over HTTP: `GET` shows the request and changes nothing (mail scanners follow links);
`POST` records a decision by a signed-in approver, bound to the plan they saw; the first one wins."""

from __future__ import annotations

import json
import logging
import urllib.parse

import azure.functions as func

from gates.http_auth import is_api_call, principal_from, token_expires_at, user_assertion
from gates.pages import message_page, request_page
from gates.shell import transact
from shared.core.access import PERMISSIONS_READ, entries_of, grant_refused, missing_permissions
from shared.core.arm_outcomes import OutcomeKind
from shared.core.authority import can_read, is_authorised
from shared.core.links import form_token, form_token_is_valid
from shared.core.model import Decision, Request, RequestKind, RequestState, Run
from shared.core.requests import DecisionRefused, Refusal, check_decision, decide
from shared.ports import CredentialUnavailable
from shared.services import Services, ServicesProvider

logger = logging.getLogger("sre_gates")
STAGE = "approval"
ROUTE = "runs/{run_id}/requests/{request_id}"
MIN_TOKEN_LIFETIME_SECONDS = 120
SIGN_IN_PATH = "/.auth/login/aad"
# How each refusal reads over HTTP; the core names refusals, this shell picks their statuses.
REFUSAL_STATUS: dict[Refusal, int] = {
    Refusal.NO_SUCH_REQUEST: 404,
    Refusal.NOT_AN_APPROVER: 403,
    Refusal.ALREADY_DECIDED: 409,
    Refusal.PLAN_CHANGED: 409,
    Refusal.EXPIRED: 410,
    Refusal.SIGN_IN_NEEDED: 401,
    Refusal.LACKS_PERMISSION: 403,
}


def _reply(req: func.HttpRequest, status: int, title: str, message: str, **extra: object) -> func.HttpResponse:
    if _wants_json(req):
        return func.HttpResponse(json.dumps({"status": status, "message": message, **extra}), status_code=status,
                                 mimetype="application/json")
    return func.HttpResponse(message_page(title, message), status_code=status, mimetype="text/html")


def _wants_json(req: func.HttpRequest) -> bool:
    return "application/json" in req.headers.get("Accept", "") or "application/json" in req.headers.get(
        "Content-Type", "")


def show_request(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    run_id, request_id = req.route_params.get("run_id", ""), req.route_params.get("request_id", "")
    principal = principal_from(req)
    if principal is None:
        return _reply(req, 401, "Sign in", "Sign in to see this request.")
    run = services.runs.get_run(run_id)
    request = run.request(request_id) if run else None
    if run is None or request is None:
        return _reply(req, 404, "Not found", "No such request. Use the link from the e-mail.")
    if not (can_read(principal) or is_authorised(principal, request)):
        return _reply(req, 403, "Refused", "You need the Gates.Reader or Gates.Approver role to see requests.")
    form: dict[str, str] | None = None
    note = ""
    lacking = _lacking(services, run, request, user_assertion(req)) \
        if request.kind is RequestKind.CREDENTIALS and request.state is RequestState.PENDING \
        and is_authorised(principal, request) else []
    if is_authorised(principal, request):
        form = {"plan_hash": request.plan_hash,
                "form_token": form_token(services.policy.form_key, principal.object_id, request_id)}
        if lacking:  # said up front; a grant would be refused naming the same permissions
            note = (f"Your roles at this resource lack {', '.join(lacking)}, which this step needs, so your "
                    "credentials cannot do it. Another approver can grant.")
    else:
        note = "You are not an approver of this plan, so you cannot decide."
    if _wants_json(req):
        return func.HttpResponse(json.dumps({
            "run_id": run_id, "request_id": request_id, "kind": request.kind.value, "state": request.state.value,
            "deadline": request.deadline.isoformat(), "plan_hash": request.plan_hash,
            "resource_id": run.resource_id, "mode": run.mode.value, "step": request.step_index,
            "steps": [{"action": s.action, "kind": s.kind.value, "permission": s.permission} for s in run.steps],
            "can_decide": form is not None}), mimetype="application/json")
    html = request_page(run, request, form=form, action_url=f"/api/runs/{run_id}/requests/{request_id}",
                        viewer=principal.name, note=note, catalog=services.policy.plans.catalog)
    return func.HttpResponse(html, mimetype="text/html", headers={"Cache-Control": "no-store"})


def _form(req: func.HttpRequest) -> dict[str, str]:
    content_type = req.headers.get("Content-Type", "")
    raw = req.get_body()
    if "application/json" in content_type:
        document = json.loads(raw or b"{}")
        if not isinstance(document, dict):
            raise ValueError("the body must be a JSON object")
        return {str(k): str(v) for k, v in document.items()}
    return {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}


def record_decision(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    run_id, request_id = req.route_params.get("run_id", ""), req.route_params.get("request_id", "")
    principal = principal_from(req)
    if principal is None:
        return _reply(req, 401, "Sign in", "Sign in to decide.")
    try:
        form = _form(req)
    except (ValueError, UnicodeDecodeError):
        return _reply(req, 400, "Bad request", "The decision must be a form or a JSON object.")
    # A browser session rides on a cookie, so its form must carry the token shown to this person;
    # an API call carries its own bearer token and cannot be forged cross-site.
    if not is_api_call(req) and not form_token_is_valid(services.policy.form_key, principal.object_id, request_id,
                                                        form.get("form_token", "")):
        return _reply(req, 403, "Refused", "This form was not issued to you. Open the link again.")
    try:
        decision = Decision(form.get("decision", ""))
    except ValueError:
        return _reply(req, 400, "Bad request", "decision must be 'approve' or 'deny'.")
    seen_hash = form.get("plan_hash", "")
    now = services.clock.now()
    run = services.runs.get_run(run_id)
    if run is None:
        return _reply(req, 404, "Not found", "No such request.")
    try:
        request = check_decision(run, request_id, principal, seen_hash, now)
        sealed = None
        if request.kind is RequestKind.CREDENTIALS and decision is Decision.APPROVE:
            assertion = user_assertion(req)
            if not assertion:
                raise DecisionRefused(Refusal.SIGN_IN_NEEDED,
                                      "Granting credentials needs your sign-in token; sign in again.")
            expires_at = token_expires_at(assertion)
            # The token is exchanged moments after the grant; one about to expire would fail there.
            if expires_at is None or expires_at < now.timestamp() + MIN_TOKEN_LIFETIME_SECONDS:
                raise DecisionRefused(Refusal.SIGN_IN_NEEDED, "Your sign-in has expired or is about to: sign in "
                                      f"again ({SIGN_IN_PATH}), reopen the link, then grant.")
            missing = _lacking(services, run, request, assertion)
            if missing:
                transact(services, run_id, lambda latest: grant_refused(latest, request_id, principal, missing, now),
                         STAGE)
                raise DecisionRefused(Refusal.LACKS_PERMISSION, (
                    f"Your roles at this resource lack {', '.join(missing)}, which step "
                    f"{(request.step_index or 0) + 1} needs, so your credentials cannot do it. Nothing was "
                    "attempted; the request stays open for the other approvers."))
            sealed = services.sealer.seal(assertion, f"{run_id}/{request_id}")
        transact(services, run_id,
                 lambda latest: decide(latest, request_id, decision, principal, seen_hash, now, sealed,
                                       form.get("reason", "")), STAGE,
                 sends_may_wait=True, run=run)
    except DecisionRefused as refusal:
        return _reply(req, REFUSAL_STATUS[refusal.refusal], "Not recorded", refusal.message,
                      refusal=refusal.refusal.value)
    verb = {Decision.APPROVE: "approved", Decision.DENY: "denied"}[decision]
    logger.info("request %s of run %s %s by %s", request_id, run_id, verb, principal.object_id)
    return _reply(req, 200, "Recorded", f"Your decision is recorded: {verb}. You can close this page.",
                  decision=verb, run_id=run_id, request_id=request_id)


def _lacking(services: Services, run: Run, request: Request, assertion: str | None) -> list[str]:
    """The step's permissions the person's own roles at the resource do not give (read with their
    exchanged token, before anything is attempted). When that cannot be read, nothing is claimed
    missing: the grant goes ahead and ARM decides, as before."""
    if not assertion or request.step_index is None or not 0 <= request.step_index < len(run.steps):
        return []
    try:
        credential = services.tokens.on_behalf_of(assertion, request.claims)
    except CredentialUnavailable as error:
        logger.info("permissions of a granter not checked: %s", error.reason)
        return []
    try:
        outcome = services.arm.perform(PERMISSIONS_READ, run.resource_id, {}, credential)
    finally:
        credential.revoke()
    entries = entries_of(outcome.body) if outcome.kind is OutcomeKind.SUCCEEDED else None
    if entries is None:
        logger.warning("permissions of a granter could not be read (%s %s)", outcome.status, outcome.code)
        return []
    return missing_permissions(entries, run.steps[request.step_index].all_permissions)


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("show_request")
    @bp.route(route=ROUTE, methods=["GET", "HEAD"], auth_level=func.AuthLevel.ANONYMOUS)
    def show(req: func.HttpRequest) -> func.HttpResponse:
        return show_request(services(), req)

    @bp.function_name("decide_request")
    @bp.route(route=ROUTE, methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    def post(req: func.HttpRequest) -> func.HttpResponse:
        return record_decision(services(), req)

    return bp
