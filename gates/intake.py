"""Alert intake over HTTP: an Azure Monitor action group's webhook posts common-schema alerts here.

Never anonymous: a function key always, and an Entra token for the action group's secure webhook
when GATES_ALERT_WEBHOOK_AUDIENCE is set. A bad alert is refused with the reason (413 when too large
for the queue, 400 otherwise) and kept in rejected alerts; a good one is queued for the plan stage and
answered 202 with its key and the status URL that leads to its run(s); the same alert again is answered
as a duplicate, naming the runs once planned.

A fresh alert (`sends_beside_status`) goes to the queue while its status row is written, not after: a post
then waits for the slower of the two round trips instead of their sum, and the queue's duplicate detection
drops what the status row would have stopped. Either way the answer waits for both."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace

import azure.functions as func
import jwt

from gates.alert_lookup import current_status
from shared.core.alert_status import AlertState, AlertStatus, intake_key, queued, sends_beside_status
from shared.core.alerts import limits_for_queue, queued_size, read_alert
from shared.core.errors import MalformedAlert, PayloadTooLarge
from shared.core.model import OutboundMessage
from shared.ports import MessageTooLarge
from shared.services import Services, ServicesProvider
from shared.topology import QUEUE_PROPERTIES, Queue

logger = logging.getLogger("sre_gates")
SECURE_WEBHOOK_ROLE = "ActionGroupsSecureWebhook"
_ALERTS_QUEUE = QUEUE_PROPERTIES[Queue.ALERTS]
DUPLICATE_WINDOW = dt.timedelta(seconds=_ALERTS_QUEUE.duplicate_detection_window_seconds
                                if _ALERTS_QUEUE.requires_duplicate_detection else 0)
# Sends made while a post's status row is written; they group into one batch per queue send anyway. Not
# `shell.ahead`'s pool: a send waits its turn on the queue's group commit, and the reads there must not.
_SENDS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="intake-send")


def _json(document: object, status: int) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(document), status_code=status, mimetype="application/json")


def _token_refusal(services: Services, req: func.HttpRequest) -> tuple[int, str] | None:
    """Why a secure webhook's post is refused (401: no valid token; 403: a valid one of another caller),
    or None. Without GATES_ALERT_WEBHOOK_AUDIENCE the function key alone admits the post."""
    if not services.policy.webhook_audience:
        return None
    header = req.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return 401, "a bearer token from the action group's secure webhook is required"
    if services.signing_keys is None or not services.policy.issuer:
        return 401, "token validation is not configured"
    token = header[7:].strip()
    try:
        key = services.signing_keys.key_for(token)
        claims = jwt.decode(token, key, algorithms=["RS256"], audience=services.policy.webhook_audience,
                            options={"require": ["exp", "aud", "iss"]}, issuer=services.policy.issuer)
    except (jwt.PyJWTError, ValueError) as error:
        return 401, f"the bearer token is not valid: {error.__class__.__name__}"
    # Azure Monitor's service principal holds this app role; any other caller of the API does not.
    if SECURE_WEBHOOK_ROLE not in (claims.get("roles") or []):
        return 403, f"the caller lacks the {SECURE_WEBHOOK_ROLE} app role"
    return None


def handle_intake(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    if (refusal := _token_refusal(services, req)) is not None:
        status, message = refusal
        return _json({"status": status, "message": message}, status)
    body = req.get_body()
    max_bytes = services.policy.max_message_bytes
    try:
        alert, document = read_alert(body, limits_for_queue(max_bytes))
        if (size := queued_size(document)) > max_bytes:
            raise PayloadTooLarge(f"the alert takes {size} bytes on the queue; the Service Bus tier takes "
                                  f"{max_bytes} bytes (GATES_SERVICE_BUS_MAX_MESSAGE_BYTES)", max_bytes)
    except MalformedAlert as error:
        return _refuse(services, body, error)
    key = intake_key(alert)
    status_url = f"{services.policy.public_base_url}/api/alerts/{key}"
    now = services.clock.now()
    # The same alert posted twice becomes one message: the queue drops the duplicate id.
    to_queue = OutboundMessage(queue=Queue.ALERTS.value, message_id=key, body=document,
                               correlation_id=alert.alert_id[-128:])
    added, beside = _add_status(services, queued(key, alert, now), to_queue,
                                sends_beside_status(alert.fired_at, now, DUPLICATE_WINDOW))
    if not added:
        known = current_status(services, key)
        if known is not None and known.state is AlertState.REFUSED:
            if beside is None or beside.exception() is not None:
                return _json({"status": 413, "message": known.outcome, "key": key}, 413)  # refused again
            # The queue took it this time (its limit was raised since): accepted after all, as it is queued.
            services.alert_status.put(queued(key, alert, now))
        if known is not None and known.state is AlertState.PLANNED:
            # The same alert again changes nothing (a send beside was a repeat the queue dropped); say
            # what it led to.
            return _json(_duplicate(services, known, status_url), 200)
        # Accepted before and not planned yet; sending again is harmless (the queue drops a repeated id)
        # and covers a first attempt whose send failed after the status was written.
    try:
        if beside is None:
            services.bus.send([to_queue])
        else:
            beside.result()
    except MessageTooLarge as error:
        too_large = PayloadTooLarge(f"the queue refused the alert as too large ({error})", max_bytes)
        services.alert_status.put(replace(queued(key, alert, now), state=AlertState.REFUSED,
                                          outcome=too_large.reason))
        return _refuse(services, body, too_large)
    logger.info("alert %s accepted as %s for %s", alert.alert_id, key, alert.target_resource_ids)
    return _json({"status": 202, "message": "alert accepted", "key": key, "message_id": key,
                  "status_url": status_url}, 202)


def _add_status(services: Services, status: AlertStatus, to_queue: OutboundMessage,
                send_beside: bool) -> tuple[bool, Future[None] | None]:
    """Whether the status row is new, and the send made while it was written (done by now), if one was."""
    beside = _SENDS.submit(services.bus.send, [to_queue]) if send_beside else None
    try:
        return services.alert_status.add(status), beside
    finally:
        if beside is not None:
            wait([beside])  # no send outlives its post, whatever the status write did


def _duplicate(services: Services, known: AlertStatus, status_url: str) -> dict[str, object]:
    base = services.policy.public_base_url
    return {"status": 200, "message": f"duplicate: this alert was received already; {known.outcome}",
            "duplicate": True, "key": known.key, "status_url": status_url, "runs": list(known.runs),
            "run_urls": [f"{base}/api/runs/{run_id}" for run_id in known.runs]}


def _refuse(services: Services, body: bytes, error: MalformedAlert) -> func.HttpResponse:
    # Kept with its reason, as a queued one would be: the sender may never read our answer.
    message_id = f"http-{hashlib.sha256(body).hexdigest()[:32]}"
    services.rejected_alerts.add(message_id, error.reason, body.decode("utf-8", "replace"), services.clock.now())
    if services.audit_sink is not None:
        services.audit_sink.alert_rejected(message_id, error.reason)
    status = 413 if isinstance(error, PayloadTooLarge) else 400
    return _json({"status": status, "message": error.reason, "rejected_id": message_id}, status)


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("alert_intake")
    @bp.route(route="alerts", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
    def intake(req: func.HttpRequest) -> func.HttpResponse:
        return handle_intake(services(), req)

    return bp
