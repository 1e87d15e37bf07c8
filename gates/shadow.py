"""Shadow mode over HTTP: the report of what shadow runs would have done over a period (read from the run
index alone), and the replay of a period's stored alerts through the plan stage in shadow mode.

`GET /api/shadow-report` is for the readers of the run list (JSON, or a page for a browser); `POST
/api/shadow/replay` is for the `Gates.Admin` role only, and, from a browser session, only with the form
token the report page showed that person (an API call's bearer token cannot be forged cross-site)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import urllib.parse
from collections.abc import Iterator
from typing import Any

import azure.functions as func

from gates import views
from gates.http_auth import is_api_call, principal_from
from gates.plan import REPLAY_MESSAGE_PREFIX, REPLAY_PROPERTY
from gates.rendering import html_response, json_response, wants_html
from gates.shadow_report import MAX_RUNS, ReportRefused, period, shadow_report
from gates.status import refusal
from shared.core.alerts import document_of
from shared.core.authority import ADMIN_ROLE, is_admin
from shared.core.correlation import replay_of
from shared.core.links import timed_form_token, timed_form_token_is_valid
from shared.core.model import OutboundMessage, RunState
from shared.ports import RunSummary
from shared.services import Services, ServicesProvider
from shared.topology import Queue

logger = logging.getLogger("sre_gates")
PAGE = 500  # index rows read a request
MAX_REPLAY_ALERTS = 2000  # alerts one replay sends; a busier period is refused, to be replayed in parts
SEND_BATCH = 100
RUN_LIFETIME = dt.timedelta(days=1)  # how long after its start a run replayed is looked for in the ended index
REPLAY_FORM = "shadow-replay"  # what a replay's form token is bound to, beside the person


def _ended(services: Services, state: RunState | None, since: dt.datetime, until: dt.datetime,
           most: int) -> Iterator[RunSummary]:
    """The index's ended runs in the period, a page at a time; `ReportRefused` past `most` of them."""
    continuation: str | None = None
    read = 0
    while True:
        page = services.runs.ended_between(state, since, until, PAGE, continuation)
        read += len(page.runs)
        if read > most:
            raise ReportRefused(f"the period holds more than {most} runs: ask for a shorter period")
        yield from page.runs
        continuation = page.continuation
        if continuation is None:
            return


# ------------------------------------------------------------------------------------------ the report


def get_report(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    if (refused := refusal(req, "the shadow report")) is not None:
        return refused
    now = services.clock.now()
    replay = req.params.get("replay", "")
    try:
        since, until = period(req.params.get("since"), req.params.get("until"), now)
        report = shadow_report(_ended(services, RunState.SHADOWED, since, until, MAX_RUNS), since, until, replay)
    except ReportRefused as error:
        return json_response({"status": 400, "message": str(error)}, 400)
    document = report.as_record()
    if not _wants_page(req):
        return json_response(document)
    principal = principal_from(req)
    assert principal is not None  # refusal() answered the anonymous
    form = {"form_token": timed_form_token(services.policy.form_key, principal.object_id, REPLAY_FORM, now),
            "since": since.isoformat(), "until": until.isoformat()} if is_admin(principal) else None
    query = {"since": since.isoformat(), "until": until.isoformat(), **({"replay": replay} if replay else {})}
    return html_response("shadow_report.html", report=document, viewer=principal.name, runs_url="/api/runs",
                         when=lambda text: views.moment(dt.datetime.fromisoformat(text), now).text if text else "",
                         json_url=f"/api/shadow-report?{urllib.parse.urlencode({**query, 'format': 'json'})}",
                         replay_form=form, replay_url="/api/shadow/replay")


def _wants_page(req: func.HttpRequest) -> bool:
    shown = str(req.params.get("format", ""))
    if shown in ("json", "html"):
        return shown == "html"
    return "application/json" not in req.headers.get("Accept", "") and wants_html(req)


# ------------------------------------------------------------------------------------------ the replay


def replay_id_for(since: dt.datetime, until: dt.datetime, plans: list[str], plan_version: int) -> str:
    """The same replay asked again (same period, plans and plan file) is the same replay: its messages and
    correlations are the same, so it makes no run twice. A new plan file makes a new replay."""
    text = f"{since.isoformat()}|{until.isoformat()}|{','.join(sorted(plans))}|{plan_version}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _refuse(status: int, message: str) -> func.HttpResponse:
    return json_response({"status": status, "message": message}, status)


def _replay_request(req: func.HttpRequest) -> dict[str, Any]:
    content_type = req.headers.get("Content-Type", "")
    raw = req.get_body() or b"{}"
    if "application/json" in content_type:
        document = json.loads(raw)
    else:  # the report page's form
        fields = urllib.parse.parse_qs(raw.decode("utf-8"), keep_blank_values=True)
        document = {k: v[-1] for k, v in fields.items() if k != "plans"}
        document["plans"] = [p for p in fields.get("plans", []) if p.strip()]
    if not isinstance(document, dict):
        raise ValueError("the body must be a JSON object")
    return document


def post_replay(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    principal = principal_from(req)
    if principal is None:
        return _refuse(401, "sign in to replay alerts")
    if not is_admin(principal):
        return _refuse(403, f"replaying alerts needs the {ADMIN_ROLE} role")
    try:
        body = _replay_request(req)
    except (ValueError, UnicodeDecodeError):
        return _refuse(400, 'the body must be a JSON object: {"since": ..., "until": ..., "plans": [...]}')
    if not is_api_call(req) and not timed_form_token_is_valid(services.policy.form_key, principal.object_id,
                                                              REPLAY_FORM, str(body.get("form_token", "")),
                                                              services.clock.now()):
        return _refuse(403, "this form was not issued to you: open the shadow report again")
    plans = body.get("plans") or []
    if not isinstance(plans, list) or not all(isinstance(p, str) and p for p in plans):
        return _refuse(400, "plans must be a list of plan names")
    known = {p.name for p in services.policy.plans.plans}
    if unknown := sorted(set(plans) - known):
        return _refuse(400, f"{unknown} name no response plan of the plan file; known: {sorted(known)}")
    now = services.clock.now()
    try:
        since, until = period(_text(body.get("since")), _text(body.get("until")), now)
        sources = _replayable(services, since, until, set(plans))
    except ReportRefused as error:
        return _refuse(400, str(error))
    replay_id = replay_id_for(since, until, plans, services.policy.plans.version)
    messages = [OutboundMessage(queue=Queue.ALERTS.value,
                                message_id=f"{REPLAY_MESSAGE_PREFIX}{replay_id}-{run_id}"[:128], body=document,
                                correlation_id=f"replay-{replay_id}", properties={REPLAY_PROPERTY: replay_id})
                for run_id, document in sources]
    for start in range(0, len(messages), SEND_BATCH):
        services.bus.send(messages[start:start + SEND_BATCH])
    logger.info("replay %s of %d alerts (%s to %s, plans %s) sent by %s", replay_id, len(messages),
                since.isoformat(), until.isoformat(), plans or "all", principal.object_id)
    # The replay's runs are made now (its messages may have been sent by an earlier, identical request):
    # the report's default period, the last day, holds them.
    report = {"replay": replay_id}
    return json_response({"status": 202, "replay_id": replay_id, "alerts_sent": len(messages),
                          "since": since.isoformat(), "until": until.isoformat(), "plans": plans,
                          "report_url": f"/api/shadow-report?{urllib.parse.urlencode(report)}"}, 202)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _replayable(services: Services, since: dt.datetime, until: dt.datetime,
                plans: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """The stored alert of each run started in the period (one per run and target; a replay's own runs and
    agents' plans left out), as (run id, alert document)."""
    chosen: list[str] = []
    seen: set[str] = set()

    def wanted(summary: RunSummary) -> bool:
        return (summary.run_id not in seen and not summary.replay and not summary.alert_rule.startswith("agent:")
                and since <= summary.created_at < until and (not plans or summary.plan_name in plans))

    # A run started in the period ended in it or soon after it (its deadlines are minutes, a day is ample),
    # or is still open.
    ended_by = min(services.clock.now() + dt.timedelta(seconds=1), until + RUN_LIFETIME)
    for summary in _ended(services, None, since, ended_by, MAX_REPLAY_ALERTS * 4):
        if wanted(summary):
            seen.add(summary.run_id)
            chosen.append(summary.run_id)
    for opened in services.runs.open_runs():
        if opened.run_id not in seen and since <= opened.indexed_at < until:
            seen.add(opened.run_id)
            chosen.append(opened.run_id)
    if len(chosen) > MAX_REPLAY_ALERTS:
        raise ReportRefused(f"the period holds {len(chosen)} runs; at most {MAX_REPLAY_ALERTS} are replayed at "
                            "once: replay shorter periods")
    documents = []
    for run_id in chosen:
        run = services.runs.get_run(run_id)
        if run is None or run.alert is None or replay_of(run.correlation_key):
            continue
        if plans and run.plan_name not in plans:
            continue
        documents.append((run_id, document_of(run.alert, run.resource_id)))
    return documents


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("shadow_report")
    @bp.route(route="shadow-report", methods=["GET", "HEAD"], auth_level=func.AuthLevel.ANONYMOUS)
    def report(req: func.HttpRequest) -> func.HttpResponse:
        return get_report(services(), req)

    @bp.function_name("shadow_replay")
    @bp.route(route="shadow/replay", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    def replay(req: func.HttpRequest) -> func.HttpResponse:
        return post_replay(services(), req)

    return bp
