"""What tests of proposed plans share: an agents policy, agent tokens signed by a test key, a pipeline
that validates them as the app does."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.pipeline import ALICE, BOB, SUB, Pipeline, User

ISSUER = "https://login.test/tenant/v2.0"
APP_CLIENT_ID = "5e1f0a4b-0000-4000-8000-0000000a5e00"
AGENT_ID = "a9e77000-0000-4000-8000-00000000a6e7"
OTHER_AGENT_ID = "07e40000-0000-4000-8000-000000000000"
VMSS = (f"/subscriptions/{SUB}/resourceGroups/rg-prod-workers/providers/Microsoft.Compute/virtualMachineScaleSets/"
        "vmss-workers")
CAROL = User("ca401000-0000-4000-8000-000000000004", "carol@contoso.test", ("Gates.Approver",))
SET_CAPACITY = "Microsoft.Compute/virtualMachineScaleSets/write"
READ_VMSS = "Microsoft.Compute/virtualMachineScaleSets/read"
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class TestKeys:
    """The issuer's signing key, as the JWKS would hand it out."""

    def key_for(self, token: str) -> Any:
        return _KEY.public_key()


def agent_token(client_id: str = AGENT_ID, *, roles: tuple[str, ...] = ("Gates.Agent",),
                audience: str = APP_CLIENT_ID, issuer: str = ISSUER, extra: dict[str, Any] | None = None,
                key: Any = None) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"aud": audience, "iss": issuer, "iat": now, "nbf": now, "exp": now + 3600,
                              "azp": client_id, "appid": client_id, "idtyp": "app", "roles": list(roles),
                              **(extra or {})}
    return jwt.encode(claims, key or _KEY, algorithm="RS256")


def agents_book(mode: str = "review", actions: tuple[str, ...] = ("vmss.read", "vmss.set_capacity"),
                approvers: tuple[User, ...] = (ALICE, BOB)) -> str:
    return json.dumps({
        "version": 3,
        "runbooks": {"book": {"steps": [{"action": "vm.restart"}]}},
        "plans": [{"name": "plan", "mode": "review",
                   "filters": {"alertRules": ["vm-not-responding"],
                               "resourceTypes": ["Microsoft.Compute/virtualMachines"]},
                   "scope": {"subscriptions": [SUB]}, "approvers": [ALICE.upn], "runbook": "book"}],
        "agents": [{"name": "sre-agent", "clientId": AGENT_ID, "actions": list(actions), "mode": mode,
                    "scope": {"subscriptions": [SUB], "resourceGroups": ["rg-prod-workers"]},
                    "approvers": [{"upn": u.upn, "objectId": u.object_id} for u in approvers],
                    "notify": ["oncall@contoso.test"]}],
    })


def agent_pipeline(mode: str = "review", **kwargs: Any) -> Pipeline:
    p = Pipeline(agents_book(mode), **kwargs)
    p.services.policy = replace(p.services.policy, issuer=ISSUER,
                                api_audiences=(APP_CLIENT_ID, f"api://{APP_CLIENT_ID}"))
    p.services.signing_keys = TestKeys()
    return p


def plan(*, key: str = "incident-42", capacity: int = 4, requester: User | None = ALICE,
         steps: list[dict[str, Any]] | None = None, resource: str = VMSS) -> dict[str, Any]:
    document: dict[str, Any] = {
        "resource_id": resource,
        "steps": steps if steps is not None else [
            {"action": "vmss.read"}, {"action": "vmss.set_capacity", "parameters": {"capacity": capacity}}],
        "rationale": "queue backlog above 10k for 15 minutes; two more workers drain it",
        "reference": "INC-42",
        "idempotency_key": key,
    }
    if requester is not None:
        document["requester"] = {"object_id": requester.object_id, "upn": requester.upn}
    return document


def post_plan(p: Pipeline, document: Any, *, token: str | None = None, route: str = "plans") -> Any:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    response = p.http("POST", route, f"https://gates.example/api/{route}",
                      headers={"Authorization": f"Bearer {token or agent_token()}",
                               "Content-Type": "application/json"}, body=body)
    return response.status_code, json.loads(response.get_body())


def read_run(p: Pipeline, run_id: str, *, token: str | None = None) -> tuple[int, dict[str, Any]]:
    response = p.http("GET", "runs/{run_id}", f"https://gates.example/api/runs/{run_id}",
                      headers={"Authorization": f"Bearer {token or agent_token()}", "Accept": "application/json"},
                      route_params={"run_id": run_id})
    return response.status_code, json.loads(response.get_body())

