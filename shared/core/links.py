"""Decision forms are tied to the person they were shown to.

An approval link carries only the run and request ids (128 random bits each): it identifies a request and
never authorises, and nothing secret rides in a URL, where request telemetry and proxies would keep it.
A decision needs a signed-in approver, and a cookie-borne POST needs the form token shown to that person.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac


def form_token(key: bytes, principal_id: str, request_id: str) -> str:
    return hmac.new(key, f"form|{principal_id}|{request_id}".encode(), hashlib.sha256).hexdigest()[:32]


def form_token_is_valid(key: bytes, principal_id: str, request_id: str, token: str) -> bool:
    return hmac.compare_digest(form_token(key, principal_id, request_id), token or "")


FORM_HOURS = 2  # an admin form's token is good for the hour it was issued in and the next


def timed_form_token(key: bytes, principal_id: str, purpose: str, now: dt.datetime) -> str:
    """A form token for a standing form (the kill switch, a replay), bound to the person, the form and the
    hour it was shown in: a token that leaks stops working within two hours."""
    return form_token(key, principal_id, f"{purpose}|{_hour(now)}")


def timed_form_token_is_valid(key: bytes, principal_id: str, purpose: str, token: str, now: dt.datetime) -> bool:
    return any(form_token_is_valid(key, principal_id, f"{purpose}|{_hour(now - dt.timedelta(hours=h))}", token)
               for h in range(FORM_HOURS))


def _hour(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y%m%d%H")
