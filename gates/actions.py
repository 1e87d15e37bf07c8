"""The action catalog over HTTP (`GET /api/actions`): what runbooks may ask ARM to do, for agents and people."""

from __future__ import annotations

import json

import azure.functions as func

from gates.status import refusal
from shared.services import Services, ServicesProvider


def list_actions(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    if (refused := refusal(req, "the action catalog")) is not None:
        return refused
    catalog = services.policy.plans.catalog
    return func.HttpResponse(json.dumps({**catalog.as_json(), "source": catalog.source.rsplit("/", 1)[-1]}),
                             mimetype="application/json")


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("list_actions")
    @bp.route(route="actions", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def actions(req: func.HttpRequest) -> func.HttpResponse:
        return list_actions(services(), req)

    return bp
