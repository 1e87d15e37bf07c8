"""The alert intake behind an action group's secure webhook: with GATES_ALERT_WEBHOOK_AUDIENCE set, only a
valid Entra token of Azure Monitor's (the `ActionGroupsSecureWebhook` app role) gets an alert in."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import azure.functions as func
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.agents import ISSUER, TestKeys, agent_token
from tests.pipeline import Pipeline, alert, plan_book

AUDIENCE = "5e1f0a4b-0000-4000-8000-0000000a5e00"
MONITOR = "461e8683-5575-4561-ac7f-899cc907d62a"  # Azure Monitor's action group application
ROLE = "ActionGroupsSecureWebhook"


def secured() -> Pipeline:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    p.services.policy = replace(p.services.policy, issuer=ISSUER, webhook_audience=AUDIENCE)
    p.services.signing_keys = TestKeys()
    return p


def monitor_token(**overrides: Any) -> str:
    return agent_token(MONITOR, **{"roles": (ROLE,), "audience": AUDIENCE, **overrides})


def post(p: Pipeline, authorization: str | None) -> func.HttpResponse:
    headers = {"Content-Type": "application/json"} | ({"Authorization": authorization} if authorization else {})
    return p.http("POST", "alerts", "https://gates.example/api/alerts", headers=headers,
                  body=json.dumps(alert()).encode())


def refused(response: func.HttpResponse, status: int) -> str:
    assert response.status_code == status, response.get_body()
    message: str = json.loads(response.get_body())["message"]
    return message


def nothing_queued(p: Pipeline) -> bool:
    p.drain()
    return p.store.all_runs() == []


def test_azure_monitors_token_gets_the_alert_in() -> None:
    p = secured()
    assert post(p, f"Bearer {monitor_token()}").status_code == 202
    p.drain()
    assert len(p.store.all_runs()) == 1


def test_a_post_without_a_token_is_refused_and_nothing_is_queued() -> None:
    p = secured()
    assert "bearer token" in refused(post(p, None), 401)
    assert nothing_queued(p)


def test_a_token_signed_by_another_key_is_refused() -> None:
    p = secured()
    forged = monitor_token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert "InvalidSignatureError" in refused(post(p, f"Bearer {forged}"), 401)
    assert nothing_queued(p)


def test_a_token_for_another_audience_is_refused() -> None:
    p = secured()
    assert "InvalidAudienceError" in refused(post(p, f"Bearer {monitor_token(audience='api://another-app')}"), 401)
    assert nothing_queued(p)


def test_a_token_from_another_issuer_is_refused() -> None:
    p = secured()
    token = monitor_token(issuer="https://login.test/another-tenant/v2.0")
    assert "InvalidIssuerError" in refused(post(p, f"Bearer {token}"), 401)
    assert nothing_queued(p)


def test_an_expired_token_is_refused() -> None:
    p = secured()
    past = int(time.time()) - 7200
    token = monitor_token(extra={"iat": past, "nbf": past, "exp": past + 3600})
    assert "ExpiredSignatureError" in refused(post(p, f"Bearer {token}"), 401)
    assert nothing_queued(p)


def test_an_unsigned_token_is_refused() -> None:
    p = secured()
    now = int(time.time())
    unsigned = jwt.encode({"aud": AUDIENCE, "iss": ISSUER, "exp": now + 3600, "roles": [ROLE]}, None,
                          algorithm="none")
    refused(post(p, f"Bearer {unsigned}"), 401)
    assert nothing_queued(p)


def test_a_valid_token_of_a_caller_without_the_webhook_role_is_forbidden() -> None:
    p = secured()
    assert ROLE in refused(post(p, f"Bearer {agent_token(audience=AUDIENCE)}"), 403)
    assert nothing_queued(p)


def test_a_webhook_audience_without_an_issuer_to_check_refuses_rather_than_trusts() -> None:
    p = secured()
    p.services.policy = replace(p.services.policy, issuer=None)
    assert "not configured" in refused(post(p, f"Bearer {monitor_token()}"), 401)
    assert nothing_queued(p)


def test_without_a_webhook_audience_the_function_key_alone_admits_the_alert() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    assert post(p, None).status_code == 202
