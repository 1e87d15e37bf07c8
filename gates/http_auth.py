"""Who is calling, as App Service Authentication tells the app (the same headers in Azure and on the
local host, which strips any that a client forges)."""

from __future__ import annotations

import base64
import binascii
import json
import urllib.parse

import azure.functions as func

from shared.core.authority import Principal

OID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
# The sign-in name, in order of preference; plans name approvers by it.
SIGN_IN_NAME_CLAIMS = ("preferred_username", "upn", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
                       "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress")
ROLE_CLAIMS = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")


def principal_from(req: func.HttpRequest) -> Principal | None:
    encoded = req.headers.get("X-MS-CLIENT-PRINCIPAL")
    if not encoded:
        return None
    try:
        document = json.loads(base64.b64decode(encoded))
    except (ValueError, binascii.Error):
        return None
    claims = document.get("claims") if isinstance(document, dict) else None
    if not isinstance(claims, list):
        return None
    role_type = document.get("role_typ") or ROLE_CLAIMS[1]
    pairs = [(c.get("typ"), c.get("val")) for c in claims if isinstance(c, dict)]
    claims_by_type: dict[str, str] = {}
    for claim_type, value in pairs:
        if claim_type and value:
            claims_by_type.setdefault(str(claim_type), str(value))
    oid = _first(claims_by_type, OID_CLAIMS) or req.headers.get("X-MS-CLIENT-PRINCIPAL-ID")
    name = _first(claims_by_type, SIGN_IN_NAME_CLAIMS) or req.headers.get("X-MS-CLIENT-PRINCIPAL-NAME")
    if not oid or not name:
        return None
    roles = frozenset(str(v) for t, v in pairs if (t == role_type or t in ROLE_CLAIMS) and v)
    return Principal(object_id=str(oid), name=str(name), roles=roles,
                     display_name=claims_by_type.get("name", str(name)))


def _first(claims: dict[str, str], types: tuple[str, ...]) -> str | None:
    return next((claims[t] for t in types if t in claims), None)


def user_assertion(req: func.HttpRequest) -> str | None:
    """The signed-in person's access token for this app: the token store's header for a browser
    session, the bearer token for an API call. Used only for the on-behalf-of exchange."""
    stored: str | None = req.headers.get("X-MS-TOKEN-AAD-ACCESS-TOKEN")
    if stored:
        return stored
    authorization: str = req.headers.get("Authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return None


def token_expires_at(token: str) -> float | None:
    """The `exp` of a token App Service Authentication already validated (not verified again here)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError, binascii.Error):
        return None


def is_api_call(req: func.HttpRequest) -> bool:
    authorization: str = req.headers.get("Authorization", "")
    return authorization.lower().startswith("bearer ")


SIGN_IN_PATH = "/.auth/login/aad"
SIGN_OUT_PATH = "/.auth/logout"


def sign_in_url(return_to: str) -> str:
    return f"{SIGN_IN_PATH}?{urllib.parse.urlencode({'post_login_redirect_uri': return_to})}"


def switch_account_url(return_to: str) -> str:
    """Sign out of this app, then sign in choosing the account (`prompt=select_account`, so Entra's
    single sign-on does not put the same person straight back), and come back to `return_to`."""
    query = urllib.parse.urlencode({"prompt": "select_account", "post_login_redirect_uri": return_to})
    sign_in = f"{SIGN_IN_PATH}?{query}"
    return f"{SIGN_OUT_PATH}?{urllib.parse.urlencode({'post_logout_redirect_uri': sign_in})}"
