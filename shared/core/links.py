"""Decision forms are tied to the person they were shown to.

An approval link carries only the run and request ids (128 random bits each): it identifies a request and
never authorises, and nothing secret rides in a URL, where request telemetry and proxies would keep it.
A decision needs a signed-in approver, and a cookie-borne POST needs the form token shown to that person.
"""

from __future__ import annotations

import hashlib
import hmac


def form_token(key: bytes, principal_id: str, request_id: str) -> str:
    return hmac.new(key, f"form|{principal_id}|{request_id}".encode(), hashlib.sha256).hexdigest()[:32]


def form_token_is_valid(key: bytes, principal_id: str, request_id: str, token: str) -> bool:
    return hmac.compare_digest(form_token(key, principal_id, request_id), token or "")
