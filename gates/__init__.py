"""The function app's stages, one blueprint each."""

from __future__ import annotations

import azure.functions as func

from gates import (
    actions,
    approvals,
    attempt,
    consent,
    deadlines,
    elevate,
    evaluate,
    execute,
    intake,
    killswitch,
    mcp_tools,
    notify,
    plan,
    proposals,
    relay,
    shadow,
    status,
)
from shared.services import ServicesProvider

STAGES = (intake, plan, proposals, mcp_tools, consent, attempt, elevate, execute, deadlines, notify, approvals, status,
          actions, relay, evaluate, killswitch, shadow)


def blueprints(services: ServicesProvider) -> list[func.Blueprint]:
    return [stage.blueprint(services) for stage in STAGES]
