"""Approvals over HTTP: `GET` shows the request and changes nothing (mail scanners follow links);
`POST` records a decision by a signed-in approver, bound to the plan they saw; the first one wins.

A browser's decision is answered with 303 See Other to the run page (post/redirect/get), so a refresh
never posts it again; API callers keep their JSON answer.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import urllib.parse

import azure.functions as func

from gates import views
from gates.http_auth import (
    SIGN_IN_PATH,
    is_api_call,
    principal_from,
    sign_in_url,
    switch_account_url,
    token_expires_at,
    user_assertion,
)
from gates.rendering import html_response, json_response, redirect, wants_html
from gates.shell import transact
from shared.core.access import PERMISSIONS_READ, entries_of, grant_refused, missing_permissions
from shared.core.arm_outcomes import OutcomeKind
from shared.core.authority import can_read, is_authorised
from shared.core.links import form_token, form_token_is_valid
from shared.core.model import Decision, Request, RequestKind, RequestState, Run
from shared.core.requests import Answer, DecisionRefused, Refusal, check_decision, decide
from shared.ports import CredentialUnavailable
from shared.services import Services, ServicesProvider

logger = logging.getLogger("sre_gates")
STAGE = "approval"
ROUTE = "runs/{run_id}/requests/{request_id}"
MIN_TOKEN_LIFETIME_SECONDS = 120
# How each refusal reads over HTTP; the core names refusals, this shell picks their statuses.
REFUSAL_STATUS: dict[Refusal, int] = {
    Refusal.NO_SUCH_REQUEST: 404,
    Refusal.NOT_AN_APPROVER: 403,
    Refusal.ALREADY_DECIDED: 409,
    Refusal.PLAN_CHANGED: 409,
    Refusal.EXPIRED: 410,
    Refusal.SIGN_IN_NEEDED: 401,
    Refusal.LACKS_PERMISSION: 403,
    Refusal.ALREADY_ANSWERED: 409,
    Refusal.COMMENT_REQUIRED: 400,
    Refusal.COMMENT_TOO_LONG: 400,
}


def request_path(run_id: str, request_id: str) -> str:
    return f"/api/runs/{run_id}/requests/{request_id}"


def run_path(run_id: str) -> str:
    return f"/api/runs/{run_id}"


def _wants_json(req: func.HttpRequest) -> bool:
    return "application/json" in req.headers.get("Accept", "") or "application/json" in req.headers.get(
        "Content-Type", "")


def _reply(req: func.HttpRequest, status: int, title: str, message: str, *, viewer: str = "",
           back: tuple[str, str] | None = None, **extra: object) -> func.HttpResponse:
    if _wants_json(req):
        return json_response({"status": status, "message": message, **extra}, status)
    here = urllib.parse.urlsplit(req.url).path or "/"
    switch = switch_account_url(here) if status == 403 else ""
    if status == 401:
        back = (sign_in_url(here), "Sign in")
    return html_response("message.html", status, title=title, message=message, viewer=viewer, switch_url=switch,
                         back_url=back[0] if back else "", back_label=back[1] if back else "")


def show_request(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    run_id, request_id = req.route_params.get("run_id", ""), req.route_params.get("request_id", "")
    principal = principal_from(req)
    if principal is None:
        return _reply(req, 401, "Sign in", "Sign in to see this request.")
    run = services.runs.get_run(run_id)
    request = run.request(request_id) if run else None
    if run is None or request is None:
        return _reply(req, 404, "Not found", "No such request. Use the link from the e-mail.", viewer=principal.name)
    if not (can_read(principal) or is_authorised(principal, request)):
        return _reply(req, 403, "You cannot see this request",
                      f"You are signed in as {principal.name}, who holds neither the Gates.Reader nor the "
                      "Gates.Approver role.", viewer=principal.name)
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
        note = f"You are signed in as {principal.name}, who is not an approver of this plan, so you cannot decide."
    if _wants_json(req):
        return json_response({
            "run_id": run_id, "request_id": request_id, "kind": request.kind.value, "state": request.state.value,
            "deadline": request.deadline.isoformat(), "plan_hash": request.plan_hash,
            "resource_id": run.resource_id, "mode": run.mode.value, "step": request.step_index,
            "steps": [{"action": s.action, "kind": s.kind.value, "permission": s.permission} for s in run.steps],
            "can_decide": form is not None})
    now = services.clock.now()
    page = views.request_page(run, request, now, services.policy.plans.catalog, principal.object_id, principal.name)
    path = request_path(run_id, request_id)
    return html_response("request.html", page=page, form=form if not page.headline.settled else None,
                         action_url=path, viewer=principal.name, note=note, lacking=bool(lacking),
                         switch_url=switch_account_url(path),
                         run_url=run_path(run_id))


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
    back = (request_path(run_id, request_id), "Back to the request")
    try:
        form = _form(req)
    except (ValueError, UnicodeDecodeError):
        return _reply(req, 400, "Bad request", "The decision must be a form or a JSON object.", back=back)
    # A browser session rides on a cookie, so its form must carry the token shown to this person;
    # an API call carries its own bearer token and cannot be forged cross-site.
    if not is_api_call(req) and not form_token_is_valid(services.policy.form_key, principal.object_id, request_id,
                                                        form.get("form_token", "")):
        return _reply(req, 403, "Not recorded", "This form was not issued to you. Open the link again.",
                      viewer=principal.name, back=back)
    try:
        decision = Decision(form.get("decision", ""))
    except ValueError:
        return _reply(req, 400, "Bad request", "decision must be 'approve' or 'deny'.", back=back)
    seen_hash = form.get("plan_hash", "")
    comment = (form.get("comment") or form.get("reason") or "").strip()  # `reason` is what API callers sent first
    channel = "api" if is_api_call(req) else "browser"
    now = services.clock.now()
    run = services.runs.get_run(run_id)
    if run is None:
        return _reply(req, 404, "Not found", "No such request.")
    try:
        request = check_decision(run, request_id, principal, seen_hash, now, decision, comment)
        confirmed = "yes" in (form.get("confirm"), req.params.get("confirm"))
        if decision is Decision.APPROVE and not is_api_call(req) and not confirmed \
                and views.choices(run, request, services.policy.plans.catalog).confirm:
            # A high-risk action asks once more; nothing is recorded until the confirmation is pressed.
            return html_response("confirm.html",
                                 page=views.request_page(run, request, now, services.policy.plans.catalog),
                                 form={k: v for k, v in form.items() if k in ("plan_hash", "form_token", "comment")},
                                 action_url=request_path(run_id, request_id), viewer=principal.name,
                                 back_url=request_path(run_id, request_id))
        sealed = None
        expires: dt.datetime | None = None
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
            expires = dt.datetime.fromtimestamp(expires_at, dt.UTC)
        answer = Answer(comment=comment, channel=channel, token_expires_at=expires)
        transact(services, run_id,
                 lambda latest: decide(latest, request_id, decision, principal, seen_hash, now, sealed, answer),
                 STAGE, sends_may_wait=True, run=run)
    except DecisionRefused as refusal:
        status = REFUSAL_STATUS[refusal.refusal]
        return _reply(req, status, "Not recorded", refusal.message, viewer=principal.name,
                      back=(run_path(run_id), "Open the run") if status in (409, 410) else back,
                      refusal=refusal.refusal.value)
    verb = {Decision.APPROVE: "approved", Decision.DENY: "denied"}[decision]
    logger.info("request %s of run %s %s by %s", request_id, run_id, verb, principal.object_id)
    if wants_html(req) and not _wants_json(req):
        query = urllib.parse.urlencode({"decided": request_id})
        return redirect(f"{run_path(run_id)}?{query}")
    return _reply(req, 200, "Recorded", f"Your decision is recorded: {verb}.", viewer=principal.name,
                  back=(run_path(run_id), "Open the run"), decision=verb, run_id=run_id, request_id=request_id)


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
    needed = sorted({p for i in request.steps_covered if 0 <= i < len(run.steps) for p in run.steps[i].all_permissions})
    return missing_permissions(entries, tuple(needed))


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
