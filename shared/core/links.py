"""Approval links identify a request; they never authorise. The signature only stops people from
guessing or editing links; the decision still needs a signed-in, authorised person."""

from __future__ import annotations

import hashlib
import hmac


def sign_link(key: bytes, run_id: str, request_id: str) -> str:
    return hmac.new(key, f"link|{run_id}|{request_id}".encode(), hashlib.sha256).hexdigest()[:32]


def link_is_valid(key: bytes, run_id: str, request_id: str, signature: str) -> bool:
    return hmac.compare_digest(sign_link(key, run_id, request_id), signature or "")


def form_token(key: bytes, principal_id: str, request_id: str) -> str:
    """Ties a decision form to the person it was shown to (a cookie-borne POST needs it)."""
    return hmac.new(key, f"form|{principal_id}|{request_id}".encode(), hashlib.sha256).hexdigest()[:32]


def form_token_is_valid(key: bytes, principal_id: str, request_id: str, token: str) -> bool:
    return hmac.compare_digest(form_token(key, principal_id, request_id), token or "")
