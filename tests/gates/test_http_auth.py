"""Reading the principal App Service Authentication passes, in the claim order Easy Auth writes."""

from __future__ import annotations

import base64
import json

import azure.functions as func

from gates.http_auth import principal_from


def request(claims: list[dict[str, str]], role_typ: str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
            headers: dict[str, str] | None = None) -> func.HttpRequest:
    principal = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": role_typ}
    encoded = base64.b64encode(json.dumps(principal).encode()).decode()
    return func.HttpRequest("GET", "https://x", headers={"X-MS-CLIENT-PRINCIPAL": encoded, **(headers or {})},
                            body=b"")


def test_the_sign_in_name_wins_over_the_display_name_whatever_the_claim_order() -> None:
    principal = principal_from(request([
        {"typ": "name", "val": "Alice (on-call)"},
        {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": "oid-1"},
        {"typ": "preferred_username", "val": "alice@contoso.test"},
        {"typ": "roles", "val": "Gates.Approver"},
    ]))
    assert principal is not None
    assert principal.name == "alice@contoso.test"
    assert principal.display_name == "Alice (on-call)"
    assert principal.roles == frozenset({"Gates.Approver"})


def test_roles_under_the_role_claim_type_are_read() -> None:
    principal = principal_from(request([
        {"typ": "oid", "val": "oid-1"}, {"typ": "preferred_username", "val": "a@b"},
        {"typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "val": "Gates.Reader"},
    ]))
    assert principal is not None
    assert principal.roles == frozenset({"Gates.Reader"})


def test_no_principal_header_is_no_principal() -> None:
    assert principal_from(func.HttpRequest("GET", "https://x", headers={}, body=b"")) is None


def test_a_garbled_principal_header_is_no_principal() -> None:
    bad = func.HttpRequest("GET", "https://x", headers={"X-MS-CLIENT-PRINCIPAL": "%%%not-base64"}, body=b"")
    assert principal_from(bad) is None
