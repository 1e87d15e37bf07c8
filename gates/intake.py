"""Alert intake over HTTP: an Azure Monitor action group's webhook posts common-schema alerts here.

Never anonymous: a function key always, and an Entra token for the action group's secure webhook
when GATES_ALERT_WEBHOOK_AUDIENCE is set. A bad alert is refused with the reason; a good one is
queued for the plan stage."""

from __future__ import annotations

import hashlib
import json
import logging

import azure.functions as func
import jwt

from shared.core.alerts import parse_alert
from shared.core.errors import MalformedAlert
from shared.core.model import OutboundMessage
from shared.services import Services, ServicesProvider
from shared.topology import Queue

logger = logging.getLogger("sre_gates")
_jwks_clients: dict[str, jwt.PyJWKClient] = {}
SECURE_WEBHOOK_ROLE = "ActionGroupsSecureWebhook"


def _json(document: object, status: int) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(document), status_code=status, mimetype="application/json")


def _token_refusal(services: Services, req: func.HttpRequest) -> str | None:
    if not services.policy.webhook_audience:
        return None
    header = req.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return "a bearer token from the action group's secure webhook is required"
    if not services.policy.jwks_uri:
        return "token validation is not configured"
    client = _jwks_clients.setdefault(services.policy.jwks_uri, jwt.PyJWKClient(services.policy.jwks_uri))
    token = header[7:].strip()
    try:
        key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=services.policy.webhook_audience,
                            options={"require": ["exp", "aud", "iss"]}, issuer=services.policy.issuer)
    except jwt.PyJWTError as error:
        return f"the bearer token is not valid: {error.__class__.__name__}"
    # Azure Monitor's service principal holds this app role; any other caller of the API does not.
    if SECURE_WEBHOOK_ROLE not in (claims.get("roles") or []):
        return f"the caller lacks the {SECURE_WEBHOOK_ROLE} app role"
    return None


def handle_intake(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    if (refusal := _token_refusal(services, req)) is not None:
        return _json({"status": 401, "message": refusal}, 401)
    body = req.get_body()
    try:
        alert = parse_alert(body)
    except MalformedAlert as error:
        # Kept with its reason, as a queued one would be: the sender may never read our answer.
        message_id = f"http-{hashlib.sha256(body).hexdigest()[:32]}"
        services.rejected_alerts.add(message_id, error.reason, body.decode("utf-8", "replace"),
                                     services.clock.now())
        if services.audit_sink is not None:
            services.audit_sink.alert_rejected(message_id, error.reason)
        return _json({"status": 400, "message": error.reason}, 400)
    # The same alert posted twice becomes one message: the queue drops the duplicate id.
    identity = f"{alert.alert_id}|{alert.condition}|{alert.fired_at.isoformat()}"
    message_id = hashlib.sha256(identity.encode()).hexdigest()[:64]
    services.bus.send([OutboundMessage(queue=Queue.ALERTS.value, message_id=message_id,
                                       body=json.loads(body), correlation_id=alert.alert_id[-128:])])
    logger.info("alert %s accepted for %s", alert.alert_id, alert.target_resource_ids)
    return _json({"status": 202, "message": "alert accepted", "message_id": message_id}, 202)


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("alert_intake")
    @bp.route(route="alerts", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
    def intake(req: func.HttpRequest) -> func.HttpResponse:
        return handle_intake(services(), req)

    return bp
