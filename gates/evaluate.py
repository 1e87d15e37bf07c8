"""`POST /api/guardrails/evaluate`: what the guardrails would decide for an alert, target by target,
without creating a run, claiming a limit place or asking anyone — the same question `check_plan` answers
for an agent's plan. For operators writing rules: post a real alert, read which rule decides."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from gates.guardrails import resource_tags
from gates.rendering import json_response
from gates.status import refusal
from shared.core.alerts import limits_for_queue, parse_alert
from shared.core.errors import MalformedAlert
from shared.core.runs import alert_verdict
from shared.services import Services, ServicesProvider


def evaluate(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    refused = refusal(req, "the guardrails' decisions")
    if refused is not None:
        return refused
    policy = services.policy
    try:
        alert = parse_alert(req.get_body(), limits_for_queue(policy.max_message_bytes))
    except MalformedAlert as error:
        return json_response({"status": 400, "message": error.reason}, 400)
    book = policy.plans
    now = services.clock.now()
    targets: list[dict[str, Any]] = []
    for resource_id in alert.target_resource_ids or ("",):
        plan = book.match(alert, resource_id)  # a missing target matches no plan
        if plan is None:
            targets.append({"resource_id": resource_id, "plan": None,
                            "decision": "no response plan matches this alert on this target: no run would act"})
            continue
        needs_tags = book.guardrails.needs_tags(plan.guardrails)
        tags = resource_tags(services, book.catalog, resource_id) if needs_tags else None
        verdict = alert_verdict(book, plan, alert, resource_id, policy.ceiling, now, tags, app_shadow=policy.shadow)
        targets.append({
            "resource_id": resource_id, "plan": plan.name, "plan_version": book.version, "mode": plan.mode.value,
            "guardrails": verdict.as_record(),
            "tags": dict(tags) if tags is not None else ("not read" if not needs_tags else "could not be read"),
            "limits": {"writes_per_resource_per_hour": verdict.limits.writes_per_resource_per_hour,
                       "resources_per_rule_per_hour": verdict.limits.resources_per_rule_per_hour,
                       "runs_in_flight_per_resource_group": verdict.limits.runs_in_flight_per_resource_group,
                       "note": "limits are counted when a run starts; an allowed run over one asks consent"},
        })
    return json_response({"alert": alert.summary, "evaluated_at": now.isoformat(), "targets": targets})


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("evaluate_guardrails")
    @bp.route(route="guardrails/evaluate", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    def evaluate_guardrails(req: func.HttpRequest) -> func.HttpResponse:
        return evaluate(services(), req)

    return bp
